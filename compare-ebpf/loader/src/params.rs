//! Parameters: a policy's `[params]` checked and written into a twin's maps.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};
use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, HashMap};
use aya::Ebpf;
use wasmfw_policy::Param;

use crate::{common, Twin};

fn param_list(key: &str, v: &Param) -> Result<Vec<String>> {
    match v {
        Param::List(l) => Ok(l.clone()),
        Param::Str(s) if s.is_empty() => Ok(Vec::new()),
        Param::Str(s) => Ok(s.split(',').map(|x| x.trim().to_string()).collect()),
        _ => bail!("parameter '{key}' must be a list"),
    }
}

fn param_int(key: &str, v: &Param, max: u64) -> Result<u64> {
    match v {
        Param::Int(i) if *i >= 0 && *i as u64 <= max => Ok(*i as u64),
        Param::Int(i) => bail!("parameter '{key}' = {i} is out of range 0..={max} (eBPF twin)"),
        _ => bail!("parameter '{key}' must be an integer"),
    }
}

/// Parses `10.0.0.0/8`, `fd00::/8` or a bare address into an LPM key.
pub fn cidr_key(s: &str) -> Result<Key<common::AddrKey>> {
    let (addr, plen) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().map_err(|_| anyhow!("'{s}' is not an address or CIDR prefix"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let plen: u32 = match plen {
        Some(p) => p.trim().parse().ok().filter(|p| *p <= max).ok_or_else(|| anyhow!("'{s}': bad prefix length"))?,
        None => max,
    };
    let (k, base) = match ip {
        IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), 96),
        IpAddr::V6(a) => (a.octets(), 0),
    };
    Ok(Key::new(base + plen, k))
}

fn fill_cidrs(ebpf: &mut Ebpf, map: &str, key: &str, list: &[String]) -> Result<u32> {
    if list.len() > common::MAX_CIDRS as usize {
        bail!("parameter '{key}' has {} entries, at most {} allowed", list.len(), common::MAX_CIDRS);
    }
    let mut trie: LpmTrie<_, common::AddrKey, u8> =
        LpmTrie::try_from(ebpf.map_mut(map).ok_or_else(|| anyhow!("no map {map}"))?)?;
    for s in list {
        let k = cidr_key(s).with_context(|| format!("parameter '{key}'"))?;
        trie.insert(&k, 1u8, 0)?;
    }
    Ok((!list.is_empty()) as u32)
}

pub(crate) fn configure(twin: Twin, ebpf: &mut Ebpf, params: &[(String, Param, usize)]) -> Result<()> {
    let known: &[&str] = match twin {
        Twin::IcmpDrop => &["from", "to"],
        Twin::L4Dos => &["syn_rate", "syn_burst", "udp_rate", "udp_burst", "blocked_ports", "allow"],
        Twin::DnsBlock => &["block", "max_pointer_hops"],
    };
    let mut p: BTreeMap<&str, &Param> = BTreeMap::new();
    for (k, v, _) in params {
        if !known.contains(&k.as_str()) {
            bail!("{}: unknown parameter '{k}' (known: {})", twin.name(), known.join(", "));
        }
        p.insert(k, v);
    }
    let list = |k: &str| p.get(k).map(|v| param_list(k, v)).transpose().map(Option::unwrap_or_default);
    match twin {
        Twin::IcmpDrop => {
            let from_set = fill_cidrs(ebpf, "icmp_from", "from", &list("from")?)?;
            let to_set = fill_cidrs(ebpf, "icmp_to", "to", &list("to")?)?;
            let mut cfg: Array<_, common::IcmpConfig> = Array::try_from(ebpf.map_mut("icmp_cfg").unwrap())?;
            cfg.set(0, common::IcmpConfig { from_set, to_set }, 0)?;
        }
        Twin::L4Dos => {
            let int = |k: &str, def: u64, max: u64| p.get(k).map(|v| param_int(k, v, max)).unwrap_or(Ok(def));
            let mut c = common::L4Config {
                syn_rate: int("syn_rate", 100, common::MAX_RATE)?,
                syn_burst: int("syn_burst", 200, common::MAX_BURST)?,
                udp_rate: int("udp_rate", 10_000, common::MAX_RATE)?,
                udp_burst: int("udp_burst", 20_000, common::MAX_BURST)?,
                allow_set: 0,
                ports_set: 0,
            };
            fill_cidrs(ebpf, "allow", "allow", &list("allow")?)?;
            let ports = list("blocked_ports")?;
            if ports.len() > common::MAX_PORTS as usize {
                bail!("parameter 'blocked_ports' has more than {} entries", common::MAX_PORTS);
            }
            let mut pm: HashMap<_, u16, u8> = HashMap::try_from(ebpf.map_mut("blocked_ports").unwrap())?;
            for s in &ports {
                let port: u16 =
                    s.trim().parse().map_err(|_| anyhow!("parameter 'blocked_ports': '{s}' is not a port"))?;
                pm.insert(port, 1, 0)?;
            }
            // Always looked up, even when empty: `wasmfw map set` may fill
            // them live (docs/filter-abi.md, "List maps").
            c.allow_set = 1;
            c.ports_set = 1;
            let mut cfg: Array<_, common::L4Config> = Array::try_from(ebpf.map_mut("l4_cfg").unwrap())?;
            cfg.set(0, c, 0)?;
        }
        Twin::DnsBlock => {
            let hops = match p.get("max_pointer_hops") {
                Some(v) => param_int("max_pointer_hops", v, common::DNS_MAX_HOPS as u64)? as u32,
                None => 8,
            };
            let block = list("block")?;
            let mut names: HashMap<_, common::NameKey, u8> = HashMap::try_from(ebpf.map_mut("dns_names").unwrap())?;
            for b in &block {
                // As the Wasm twin: dot-separated labels of 1..=63 bytes, at most 255.
                let name = b.trim().to_ascii_lowercase();
                if name.is_empty() || name.len() > 255 || !name.split('.').all(|l| (1..=63).contains(&l.len())) {
                    bail!("parameter 'block': '{b}' is not a domain name");
                }
                names.insert(common::name_key(name.as_bytes()), 1, 0)?;
            }
            let mut cfg: Array<_, common::DnsConfig> = Array::try_from(ebpf.map_mut("dns_cfg").unwrap())?;
            // Every suffix is looked up: a name added live (`wasmfw map set
            // dns_names`) may have more labels than any in the policy.
            cfg.set(0, common::DnsConfig { max_pointer_hops: hops, max_block_labels: common::DNS_MAX_LABELS }, 0)?;
        }
    }
    Ok(())
}
