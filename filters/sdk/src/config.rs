//! The configuration a filter receives in `wasmfw_init`: the policy's
//! `[params]` as `key=value` lines (`docs/filter-abi.md`), with typed
//! getters. A missing key takes the default the filter passes; a value that
//! does not parse is an [`Error::Param`].
//!
//! ```ignore
//! config.reject_unknown_keys(&["rate", "allow"])?;
//! let rate = config.u64("rate", 100)?;
//! let allow = config.cidrs("allow")?;
//! ```
//!
//! The text lives as long as the instance, so `&'static str` values (e.g.
//! from [`Config::list`]) can be kept in the filter's state.

use core::fmt;
use core::mem::MaybeUninit;

use crate::abi;
use crate::net::Addr;

/// Why `init` failed; logged as one line by the SDK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A bad parameter: logged as `param <key>: <why>[: '<value>']`.
    Param { key: &'static str, why: &'static str, value: &'static str },
    /// The host refused to declare a map or counter.
    Host { what: &'static str, name: &'static str, code: i32 },
}

impl Error {
    /// A parameter error without a value to quote.
    pub fn param(key: &'static str, why: &'static str) -> Error {
        Error::Param { key, why, value: "" }
    }

    /// The (negative) code `wasmfw_init` returns for this error.
    pub fn code(&self) -> i32 {
        match *self {
            Error::Param { .. } => abi::E_INVAL,
            Error::Host { code, .. } if code < 0 => code,
            Error::Host { .. } => abi::E_INVAL,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Param { key, why, value: "" } => write!(f, "param {key}: {why}"),
            Error::Param { key, why, value } => write!(f, "param {key}: {why}: '{value}'"),
            Error::Host { what, name, code } => {
                write!(f, "{what} {name}: declaration refused by the host (error {code})")
            }
        }
    }
}

/// The `key=value` configuration text.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    text: &'static str,
}

impl Config {
    /// Wraps configuration text (the SDK does this for `init`; tests can too).
    pub const fn new(text: &'static str) -> Config {
        Config { text }
    }

    /// Every `(key, value)` pair in order; a line without `=` or with an
    /// empty key is an error. Empty lines are skipped.
    pub fn iter(&self) -> impl Iterator<Item = Result<(&'static str, &'static str), Error>> {
        self.text.split('\n').filter(|line| !line.is_empty()).map(|line| match line.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key, value)),
            _ => Err(Error::Param { key: line, why: "expected key=value", value: "" }),
        })
    }

    /// Fails on the first malformed line, duplicate key, or key not in `known`.
    /// Call it first in `init`, so that a typo in a policy is an error.
    pub fn reject_unknown_keys(&self, known: &[&str]) -> Result<(), Error> {
        for (i, pair) in self.iter().enumerate() {
            let (key, _) = pair?;
            if !known.contains(&key) {
                return Err(Error::param(key, "unknown parameter"));
            }
            if self.iter().take(i).any(|p| matches!(p, Ok((k, _)) if k == key)) {
                return Err(Error::param(key, "given twice"));
            }
        }
        Ok(())
    }

    /// The raw value of `key`, if present (the first one).
    pub fn get(&self, key: &str) -> Option<&'static str> {
        self.iter().flatten().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A string, or `default`.
    pub fn str(&self, key: &str, default: &'static str) -> &'static str {
        self.get(key).unwrap_or(default)
    }

    /// A decimal `u64`, or `default`.
    pub fn u64(&self, key: &'static str, default: u64) -> Result<u64, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_u64(v).ok_or(Error::Param { key, why: "not an unsigned integer", value: v }),
        }
    }

    /// A decimal `u32`, or `default`.
    pub fn u32(&self, key: &'static str, default: u32) -> Result<u32, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_u64(v).and_then(|n| u32::try_from(n).ok()).ok_or(Error::Param {
                key,
                why: "not an unsigned 32-bit integer",
                value: v,
            }),
        }
    }

    /// A decimal `u16` (e.g. a port), or `default`.
    pub fn u16(&self, key: &'static str, default: u16) -> Result<u16, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => parse_u64(v).and_then(|n| u16::try_from(n).ok()).ok_or(Error::Param {
                key,
                why: "not an unsigned 16-bit integer",
                value: v,
            }),
        }
    }

    /// `true` or `false`, or `default`.
    pub fn bool(&self, key: &'static str, default: bool) -> Result<bool, Error> {
        match self.get(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(Error::Param { key, why: "not true or false", value: v }),
        }
    }

    /// The elements of a list (`a,b,c`); empty if the key is missing or its
    /// value is empty.
    pub fn list(&self, key: &str) -> impl Iterator<Item = &'static str> {
        let v = self.get(key).unwrap_or("");
        v.split(abi::CONFIG_LIST_SEP as char).filter(move |_| !v.is_empty())
    }

    /// A list whose elements `parse` converts, at most `N` of them.
    pub fn list_of<T: Copy, const N: usize>(
        &self,
        key: &'static str,
        why: &'static str,
        parse: impl Fn(&'static str) -> Option<T>,
    ) -> Result<ArrayVec<T, N>, Error> {
        let mut out = ArrayVec::new();
        for item in self.list(key) {
            let v = parse(item).ok_or(Error::Param { key, why, value: item })?;
            out.push(v).map_err(|_| Error::param(key, "too many entries"))?;
        }
        Ok(out)
    }

    /// A list of ports (0..=65535), at most 64.
    pub fn ports(&self, key: &'static str) -> Result<ArrayVec<u16, 64>, Error> {
        self.list_of(key, "not a port", |s| parse_u64(s).and_then(|n| u16::try_from(n).ok()))
    }

    /// A list of IPv4/IPv6 addresses and CIDR prefixes, at most 64.
    pub fn cidrs(&self, key: &'static str) -> Result<CidrList, Error> {
        self.list_of(key, "not an address or CIDR prefix", Cidr::parse).map(CidrList)
    }
}

/// A decimal number: digits only, no sign, no overflow.
pub fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |n, b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// A vector with a fixed capacity and no allocation. Creating one costs
/// nothing (the slots start uninitialised), so a filter can keep a large one
/// on the stack per packet.
#[derive(Clone, Copy)]
pub struct ArrayVec<T: Copy, const N: usize> {
    /// `items[..len]` are initialised; `len <= N`.
    items: [MaybeUninit<T>; N],
    len: usize,
}

impl<T: Copy, const N: usize> ArrayVec<T, N> {
    pub const fn new() -> Self {
        ArrayVec { items: [const { MaybeUninit::uninit() }; N], len: 0 }
    }

    /// Appends `v`, or gives it back if full.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), T> {
        let len = self.len;
        match self.items.get_mut(len) {
            Some(slot) => {
                slot.write(v);
                self.len = len + 1;
                Ok(())
            }
            None => Err(v),
        }
    }

    #[inline]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `push` is the only writer: it initialises `items[len]`
        // before counting it, so `items[..len]` are initialised, `len <= N`.
        unsafe { core::slice::from_raw_parts(self.items.as_ptr().cast::<T>(), self.len) }
    }

    #[inline]
    pub fn iter(&self) -> core::slice::Iter<'_, T> {
        self.as_slice().iter()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A plain scan: the lists here are short, and `<[T]>::contains` is
    /// unrolled for long slices, which costs more fuel than it saves.
    #[inline]
    pub fn contains(&self, v: &T) -> bool
    where
        T: PartialEq,
    {
        self.iter().any(|x| x == v)
    }
}

impl<T: Copy, const N: usize> Default for ArrayVec<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + fmt::Debug, const N: usize> fmt::Debug for ArrayVec<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// An address prefix over 16-byte addresses: IPv4 prefixes are stored as
/// their mapped form `::ffff:a.b.c.d/(96 + len)`.
///
/// Kept as two 64-bit words in memory order (`u64::from_ne_bytes` of each
/// half of the address), so matching is two loads and masks: no byte
/// swapping, which Wasm has no instruction for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cidr {
    network: [u64; 2],
    mask: [u64; 2],
}

/// The two halves of 16 address bytes, in memory order.
#[inline]
fn words(bytes: [u8; 16]) -> [u64; 2] {
    let (hi, lo) = bytes.split_at(8);
    let word = |half: &[u8]| half.try_into().map_or(0, u64::from_ne_bytes);
    [word(hi), word(lo)]
}

impl Cidr {
    /// `10.0.0.0/8`, `fd00::/8`, or a bare address (`/32`, `/128`). Host
    /// bits after the prefix are ignored.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let (addr, max, base) = match parse_ipv4(addr) {
            Some(v4) => (Addr::from_v4(v4), 32, 96),
            None => (parse_ipv6(addr)?, 128, 0),
        };
        let len = match prefix {
            None => max,
            Some(p) if p.len() <= 3 => parse_u64(p).filter(|&n| n <= max)?,
            Some(_) => return None,
        };
        Some(Cidr::new(addr, (base + len) as u32))
    }

    /// The prefix of `len` bits (0..=128, clamped) of `addr`.
    pub fn new(addr: Addr, len: u32) -> Cidr {
        let mask = match len.min(128) {
            0 => 0,
            n => u128::MAX << (128 - n),
        };
        Cidr { network: words((addr.to_u128() & mask).to_be_bytes()), mask: words(mask.to_be_bytes()) }
    }

    #[inline]
    pub fn contains(&self, addr: &Addr) -> bool {
        let [a, b] = words(addr.0);
        (a & self.mask[0]) == self.network[0] && (b & self.mask[1]) == self.network[1]
    }

    /// The network (bits after the prefix zero) and the prefix length.
    pub fn network_and_len(&self) -> (Addr, u32) {
        let [a, b] = self.network;
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&a.to_ne_bytes());
        bytes[8..].copy_from_slice(&b.to_ne_bytes());
        (Addr(bytes), self.mask[0].count_ones() + self.mask[1].count_ones())
    }

    /// `contains(&Addr::from_v4(v4))` without building the 16-byte address.
    #[inline]
    pub fn contains_v4(&self, v4: [u8; 4]) -> bool {
        // ::ffff:a.b.c.d: the first word is zero, the second `0 0 ff ff a b c d`.
        let low = u64::from_ne_bytes([0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3]]);
        self.network[0] == 0 && (low & self.mask[1]) == self.network[1]
    }
}

/// Up to 64 prefixes, matched in order.
#[derive(Clone, Copy, Debug, Default)]
pub struct CidrList(pub ArrayVec<Cidr, 64>);

impl CidrList {
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True if any prefix contains `addr`.
    #[inline]
    pub fn contains(&self, addr: &Addr) -> bool {
        self.0.iter().any(|c| c.contains(addr))
    }

    /// True if any prefix contains the IPv4 address `v4` (as `::ffff:v4`).
    #[inline]
    pub fn contains_v4(&self, v4: [u8; 4]) -> bool {
        self.0.iter().any(|c| c.contains_v4(v4))
    }

    /// True if the list is empty ("any") or contains `addr`.
    #[inline]
    pub fn matches_or_empty(&self, addr: &Addr) -> bool {
        self.is_empty() || self.contains(addr)
    }
}

/// Dotted quad: four decimal numbers 0..=255, no leading zeros.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.len() > 3 || (p.len() > 1 && p.starts_with('0')) {
            return None;
        }
        *o = u8::try_from(parse_u64(p)?).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// IPv6 text form (RFC 4291 section 2.2): eight groups of 1-4 hex digits,
/// `::` for one or more zero groups, an optional dotted quad at the end.
pub fn parse_ipv6(s: &str) -> Option<Addr> {
    let (head, tail, gap) = match s.split_once("::") {
        Some((h, t)) => (h, t, true),
        None => (s, "", false),
    };
    let mut h = [0u16; 8];
    let mut t = [0u16; 8];
    let nh = groups(head, &mut h, !gap)?;
    let nt = if gap { groups(tail, &mut t, true)? } else { 0 };
    if (gap && nh + nt > 7) || (!gap && nh != 8) {
        return None;
    }
    let mut all = [0u16; 8];
    all[..nh].copy_from_slice(&h[..nh]);
    all[8 - nt..].copy_from_slice(&t[..nt]);
    let mut out = [0u8; 16];
    for (o, g) in out.chunks_exact_mut(2).zip(all) {
        o.copy_from_slice(&g.to_be_bytes());
    }
    Some(Addr(out))
}

/// Parses `a:b:c` (possibly ending in a dotted quad if `v4_last`) into
/// `out`; returns the number of 16-bit groups.
fn groups(s: &str, out: &mut [u16; 8], v4_last: bool) -> Option<usize> {
    if s.is_empty() {
        return Some(0);
    }
    let mut n = 0;
    let mut parts = s.split(':').peekable();
    while let Some(p) = parts.next() {
        if v4_last && parts.peek().is_none() && p.contains('.') {
            let [a, b, c, d] = parse_ipv4(p)?;
            *out.get_mut(n)? = u16::from_be_bytes([a, b]);
            *out.get_mut(n + 1)? = u16::from_be_bytes([c, d]);
            return Some(n + 2);
        }
        if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *out.get_mut(n)? = u16::from_str_radix(p, 16).ok()?;
        n += 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn v6(s: &str) -> Option<std::string::String> {
        parse_ipv6(s).map(|a| std::net::Ipv6Addr::from(a.0).to_string())
    }

    #[test]
    fn ipv6_forms() {
        for s in [
            "::",
            "::1",
            "1::",
            "fd00::",
            "2001:db8::8:800:200c:417a",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "::ffff:10.1.2.3",
            "64:ff9b::192.0.2.33",
            "1:2:3:4:5:6:1.2.3.4",
            "FD00::ABCD",
        ] {
            let want: std::net::Ipv6Addr = s.parse().unwrap();
            assert_eq!(v6(s), Some(want.to_string()), "{s}");
        }
        for s in [
            "",
            ":",
            ":::",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7",
            "1::2::3",
            "12345::",
            "g::",
            ":1::",
            "1::2:",
            "1.2.3.4::",
            "::1.2.3",
            "::1.2.3.4:1",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::+1",
        ] {
            assert_eq!(v6(s), None, "{s}");
        }
    }

    #[test]
    fn ipv4_forms() {
        assert_eq!(parse_ipv4("10.99.0.255"), Some([10, 99, 0, 255]));
        assert_eq!(parse_ipv4("0.0.0.0"), Some([0; 4]));
        for s in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.1.1.1", "1..1.1", "1.2.3.-4", "1.2.3.4 ", "+1.2.3.4"] {
            assert_eq!(parse_ipv4(s), None, "{s}");
        }
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("10.99.0.0/16").unwrap();
        assert!(c.contains(&Addr::from_v4([10, 99, 200, 1])));
        assert!(!c.contains(&Addr::from_v4([10, 98, 0, 1])));
        // IPv4 prefixes never match IPv6 addresses, even /0.
        let any4 = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(any4.contains(&Addr::from_v4([1, 2, 3, 4])));
        assert!(!any4.contains(&parse_ipv6("2001:db8::1").unwrap()));
        let bare = Cidr::parse("192.0.2.7").unwrap();
        assert!(bare.contains(&Addr::from_v4([192, 0, 2, 7])) && !bare.contains(&Addr::from_v4([192, 0, 2, 6])));
        let c6 = Cidr::parse("fd00::/8").unwrap();
        assert!(c6.contains(&parse_ipv6("fdff::1").unwrap()) && !c6.contains(&parse_ipv6("fe00::1").unwrap()));
        assert!(Cidr::parse("2001:db8::1").unwrap().contains(&parse_ipv6("2001:db8::1").unwrap()));
        // Host bits are ignored.
        assert_eq!(Cidr::parse("10.1.2.3/8"), Cidr::parse("10.0.0.0/8"));
        for s in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/0008", "/8", "10.0.0.0/8/8", "x"] {
            assert_eq!(Cidr::parse(s), None, "{s}");
        }
    }

    #[test]
    fn typed_getters_and_defaults() {
        let c = Config::new("a=10\nb=true\nlist=1.2.3.4,fd00::/8\nempty=\nports=23,2323\nbig=99999999999\n");
        assert_eq!(c.u64("a", 1), Ok(10));
        assert_eq!(c.u32("missing", 7), Ok(7));
        assert_eq!(c.bool("b", false), Ok(true));
        assert_eq!(c.str("a", ""), "10");
        assert!(c.u32("big", 0).is_err());
        assert_eq!(c.u16("a", 0), Ok(10));
        assert!(c.u16("big", 0).is_err());
        assert_eq!(c.u64("big", 0), Ok(99_999_999_999));
        assert_eq!(c.u64("b", 0), Err(Error::Param { key: "b", why: "not an unsigned integer", value: "true" }));
        assert!(c.bool("a", false).is_err());
        assert_eq!(c.list("list").count(), 2);
        assert_eq!(c.list("empty").count(), 0);
        assert_eq!(c.list("missing").count(), 0);
        assert_eq!(c.cidrs("list").unwrap().0.len(), 2);
        assert!(c.cidrs("empty").unwrap().is_empty());
        assert_eq!(c.ports("ports").unwrap().as_slice(), [23, 2323]);
        assert!(c.ports("a").is_ok());
        assert!(c.ports("big").is_err());
        assert!(c.cidrs("ports").is_err());
    }

    #[test]
    fn u64_edges() {
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        for s in ["", "-1", "+1", " 1", "1 ", "0x10", "1_000"] {
            assert_eq!(parse_u64(s), None, "{s}");
        }
    }

    #[test]
    fn unknown_and_malformed_keys() {
        let known = ["a", "b"];
        assert_eq!(Config::new("").reject_unknown_keys(&known), Ok(()));
        assert_eq!(Config::new("a=1\nb=2\n").reject_unknown_keys(&known), Ok(()));
        assert_eq!(Config::new("a=1\nc=2").reject_unknown_keys(&known), Err(Error::param("c", "unknown parameter")));
        assert_eq!(Config::new("a=1\na=2").reject_unknown_keys(&known), Err(Error::param("a", "given twice")));
        assert!(Config::new("a").reject_unknown_keys(&known).is_err());
        assert!(Config::new("=1").reject_unknown_keys(&known).is_err());
        // Values may contain '='.
        assert_eq!(Config::new("a=x=y").get("a"), Some("x=y"));
        assert_eq!(
            std::format!(
                "{}",
                Error::Param { key: "allow", why: "not an address or CIDR prefix", value: "10.0.0.300" }
            ),
            "param allow: not an address or CIDR prefix: '10.0.0.300'"
        );
    }

    #[test]
    fn list_capacity() {
        let mut s = std::string::String::from("allow=");
        for i in 0..65 {
            s.push_str(&std::format!("{}10.0.0.{i}", if i > 0 { "," } else { "" }));
        }
        let s: &'static str = std::boxed::Box::leak(s.into_boxed_str());
        assert_eq!(Config::new(s).cidrs("allow").unwrap_err(), Error::param("allow", "too many entries"));
        let s64 = &s[..s.rfind(',').unwrap()];
        assert_eq!(Config::new(s64).cidrs("allow").unwrap().0.len(), 64);
    }
}
