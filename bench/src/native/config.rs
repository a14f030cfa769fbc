//! Configuration of the native filters from the policy's `[params]`.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use wasmfw_policy::Param;

use super::parse::Addr;

pub(super) fn list(p: Option<&Param>) -> Result<Vec<String>> {
    match p {
        None => Ok(Vec::new()),
        Some(Param::List(l)) => Ok(l.clone()),
        Some(Param::Str(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Param::Str(s)) => Ok(s.split(',').map(str::to_string).collect()),
        Some(p) => bail!("expected a list, got {p:?}"),
    }
}

pub(super) fn int(p: Option<&Param>, default: u64) -> Result<u64> {
    match p {
        None => Ok(default),
        Some(Param::Int(i)) if *i >= 0 => Ok(*i as u64),
        Some(p) => bail!("expected a non-negative integer, got {p:?}"),
    }
}

/// A prefix on the 16-byte address space.
#[derive(Clone, Copy)]
pub(super) struct Cidr {
    addr: u128,
    plen: u32,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr> {
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let ip: IpAddr = a.parse().map_err(|_| anyhow!("'{s}' is not an address or CIDR prefix"))?;
        let (addr, base, max) = match ip {
            IpAddr::V4(v4) => (u128::from_be_bytes(v4.to_ipv6_mapped().octets()), 96, 32),
            IpAddr::V6(v6) => (u128::from_be_bytes(v6.octets()), 0, 128),
        };
        let plen = match p {
            Some(p) => p.parse::<u32>().ok().filter(|p| *p <= max).ok_or_else(|| anyhow!("'{s}': bad prefix"))?,
            None => max,
        };
        Ok(Cidr { addr, plen: base + plen })
    }

    pub(super) fn contains(&self, a: &Addr) -> bool {
        self.plen == 0 || (u128::from_be_bytes(*a) ^ self.addr) >> (128 - self.plen) == 0
    }
}

pub(super) fn cidrs(p: Option<&Param>) -> Result<Vec<Cidr>> {
    list(p)?.iter().map(|s| Cidr::parse(s.trim())).collect()
}

pub(super) fn matches_or_empty(l: &[Cidr], a: &Addr) -> bool {
    l.is_empty() || l.iter().any(|c| c.contains(a))
}
