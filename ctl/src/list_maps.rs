//! Typed keys of the list maps (docs/filter-abi.md, "List maps"): a port,
//! an address prefix or a domain name instead of hex, for both engines,
//! and the `<map>_lens` mask the Wasm filters keep beside a prefix or name
//! map.

use anyhow::{anyhow, bail, Result};
use std::net::IpAddr;

use wasmfw_ebpf::common::{name_key, AddrKey};

/// What a list map's key holds, known by its name and key size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `u16` port, little-endian (the eBPF twin's host order on x86/arm64).
    Port,
    /// eBPF LPM key: `u32` LE prefix length of the 16-byte address (IPv4 as
    /// `::ffff:a.b.c.d/(96 + len)`), then the address, bits after the prefix zero.
    Cidr,
    /// {`u64` LE polynomial hash of the lowercased name, `u64` LE length}.
    Name,
}

/// Bytes of a [`Form::Cidr`] key.
const CIDR_KEY: usize = 4 + size_of::<AddrKey>();
/// Bytes of a `<map>_lens` value: one bit per length 0..=255.
pub const LENS_BYTES: usize = 32;

/// The list maps by name: their form and key size.
fn list_map(name: &str) -> Option<(Form, usize)> {
    match name {
        "blocked_ports" => Some((Form::Port, 2)),
        "allow" | "icmp_from" | "icmp_to" => Some((Form::Cidr, CIDR_KEY)),
        "dns_names" => Some((Form::Name, 16)),
        _ => None,
    }
}

/// The typed form of map `name`'s keys, if it is a list map.
pub fn form_of(name: &str, key_size: usize) -> Option<Form> {
    list_map(name).filter(|&(_, size)| size == key_size).map(|(form, _)| form)
}

/// Whether `name` is a list map's name (whatever its key size).
pub fn is_list_name(name: &str) -> bool {
    list_map(name).is_some()
}

/// A list parameter's map or its `<map>_lens` mask (docs/filter-abi.md,
/// "List maps"): configuration from the policy, never state to carry over.
pub fn is_list_map(name: &str, key_size: usize) -> bool {
    form_of(name, key_size).is_some() || name.strip_suffix("_lens").is_some_and(is_list_name)
}

/// The key for `s` in `form` (`443`, `10.0.0.0/8`, `ads.example.com`).
pub fn parse(form: Form, s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    match form {
        Form::Port => {
            let port: u16 = s.parse().map_err(|_| anyhow!("'{s}' is not a port (0-65535) or 0x-prefixed hex"))?;
            Ok(port.to_le_bytes().to_vec())
        }
        Form::Cidr => {
            let (addr, len) = s.split_once('/').map_or((s, None), |(a, l)| (a, Some(l)));
            let ip: IpAddr = addr.parse().map_err(|_| anyhow!("'{s}' is not an address or CIDR prefix"))?;
            let (bytes, base, max) = match ip {
                IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), 96, 32),
                IpAddr::V6(a) => (a.octets(), 0, 128),
            };
            let len: u32 = match len {
                None => max,
                Some(l) => l.parse().ok().filter(|l| *l <= max).ok_or_else(|| anyhow!("'{s}': bad prefix length"))?,
            };
            let mut key = (base + len).to_le_bytes().to_vec();
            key.extend_from_slice(&bytes);
            normalize(form, &mut key)?;
            Ok(key)
        }
        Form::Name => {
            let name = s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
            if name.is_empty() || name.len() > 255 || !name.split('.').all(|l| (1..=63).contains(&l.len())) {
                bail!("'{s}' is not a domain name (dot-separated labels of 1-63 bytes, at most 255)");
            }
            let k = name_key(name.as_bytes());
            Ok([k.hash.to_le_bytes(), k.len.to_le_bytes()].concat())
        }
    }
}

/// Zeroes the address bits after a [`Form::Cidr`] key's prefix (the Wasm
/// filters match the exact key); other forms are left as they are.
pub fn normalize(form: Form, key: &mut [u8]) -> Result<()> {
    if form != Form::Cidr || key.len() != CIDR_KEY {
        return Ok(());
    }
    let len = u32::from_le_bytes(key[..4].try_into().expect("4 bytes"));
    if len > 128 {
        bail!("prefix length {len} is above 128");
    }
    let addr = u128::from_be_bytes(key[4..].try_into().expect("16 bytes"));
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    key[4..].copy_from_slice(&(addr & mask).to_be_bytes());
    Ok(())
}

/// The key in its typed form, when it can be read back (not for hashed names).
pub fn describe(form: Form, key: &[u8]) -> Option<String> {
    match form {
        Form::Port => Some(u16::from_le_bytes(key.try_into().ok()?).to_string()),
        Form::Cidr => {
            let len = u32::from_le_bytes(key.get(..4)?.try_into().ok()?);
            let addr = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(key.get(4..)?).ok()?);
            Some(match addr.to_ipv4_mapped() {
                Some(v4) if len >= 96 => format!("{v4}/{}", len - 96),
                _ => format!("{addr}/{len}"),
            })
        }
        Form::Name => None,
    }
}

/// The lengths mask of a prefix or name map's keys (bit `n`: some key has
/// length `n`), as the filters declare `<map>_lens`; `None` for ports.
pub fn lens_mask<'a>(form: Form, keys: impl IntoIterator<Item = &'a [u8]>) -> Option<[u8; LENS_BYTES]> {
    let at: std::ops::Range<usize> = match form {
        Form::Port => return None,
        Form::Cidr => 0..4,
        Form::Name => 8..16,
    };
    let mut mask = [0u8; LENS_BYTES];
    for k in keys {
        let Some(b) = k.get(at.clone()) else { continue };
        let len = b.iter().rev().fold(0u64, |n, &x| n << 8 | u64::from(x));
        if len < 8 * LENS_BYTES as u64 {
            mask[len as usize / 8] |= 1 << (len % 8);
        }
    }
    Some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_keys() {
        assert_eq!(parse(Form::Port, "8080").unwrap(), vec![0x90, 0x1f]);
        assert!(parse(Form::Port, "65536").is_err());
        let k = parse(Form::Cidr, "10.99.1.2/16").unwrap();
        assert_eq!(k[..4], 112u32.to_le_bytes());
        assert_eq!(k[4..], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 99, 0, 0]);
        assert_eq!(describe(Form::Cidr, &k).unwrap(), "10.99.0.0/16");
        assert_eq!(describe(Form::Cidr, &parse(Form::Cidr, "fd00::1/8").unwrap()).unwrap(), "fd00::/8");
        assert!(parse(Form::Cidr, "10.0.0.0/33").is_err());
        let n = parse(Form::Name, "Ads.Example.COM.").unwrap();
        let want = name_key(b"ads.example.com");
        assert_eq!(n, [want.hash.to_le_bytes(), 15u64.to_le_bytes()].concat());
        assert!(parse(Form::Name, "a..b").is_err());
        let mask = lens_mask(Form::Name, [n.as_slice()]).unwrap();
        assert_eq!(mask[1], 1 << 7);
        assert_eq!(lens_mask(Form::Cidr, [k.as_slice()]).unwrap()[14], 1);
    }

    #[test]
    fn list_maps_and_their_masks_are_configuration_not_state() {
        assert!(is_list_map("blocked_ports", 2));
        assert!(is_list_map("allow", 20));
        assert!(is_list_map("allow_lens", 4));
        assert!(is_list_map("dns_names", 16));
        assert!(is_list_map("dns_names_lens", 4));
        // State (token buckets) and a same-named map of another key size are not.
        assert!(!is_list_map("syn_buckets", 16));
        assert!(!is_list_map("udp_buckets_lens", 4));
        assert!(!is_list_map("blocked_ports", 4));
    }
}
