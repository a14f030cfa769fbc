//! `wasmfw map list|dump|get|set|del --iface IF`: the maps of the filter
//! attached on an interface of this network namespace, for either engine,
//! like `bpftool map`. Keys and values are hex bytes of exactly the sizes
//! the filter declared (`0a000001`, `0x0a000001` or `0a 00 00 01`); the
//! list maps (`blocked_ports`, `allow`, `dns_names`, ...) also take typed
//! keys (`443`, `10.0.0.0/8`, `ads.example.com`, see [`typed`]). The next
//! packet sees a change.

mod typed;

/// A list parameter's map or its `<map>_lens` mask (docs/filter-abi.md,
/// "List maps"): configuration from the policy, never state to carry over.
pub fn is_list_map(name: &str, key_size: usize) -> bool {
    typed::form_of(name, key_size).is_some() || name.strip_suffix("_lens").is_some_and(typed::is_list_name)
}

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::kmod::{self, Device, MapInfoText as _};
use crate::netns;

/// What `map` does.
#[derive(clap::Subcommand, Debug)]
pub enum MapCmd {
    /// The filter's maps: name, kind, key and value sizes, capacity.
    List {
        #[arg(long)]
        iface: String,
    },
    /// Every entry of a map (per-CPU maps: one value per CPU).
    Dump {
        #[arg(long)]
        iface: String,
        name: String,
    },
    /// One key's value.
    Get {
        #[arg(long)]
        iface: String,
        name: String,
        /// Hex bytes, the map's key size; for list maps also a port,
        /// CIDR prefix or domain name (tried first; `0x` forces hex).
        key: String,
    },
    /// Sets a key (created if missing; per-CPU maps: on every CPU).
    Set {
        #[arg(long)]
        iface: String,
        name: String,
        key: String,
        /// Hex bytes, the map's value size; list maps default to `01`.
        value: Option<String>,
    },
    /// Deletes a key.
    Del {
        #[arg(long)]
        iface: String,
        name: String,
        key: String,
    },
}

#[derive(Serialize)]
struct MapDesc {
    name: String,
    kind: String,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
}

#[derive(Serialize)]
struct Entry {
    key: String,
    /// The key in its typed form (`443`, `10.0.0.0/8`), for list maps.
    #[serde(rename = "as", skip_serializing_if = "Option::is_none")]
    typed: Option<String>,
    /// One value, or one per CPU for per-CPU maps.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<Vec<String>>,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses hex bytes (`0a000001`, `0x0a000001`, `0a:00:00:01`, `0a 00 00 01`).
pub fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>> {
    let t: String = s.trim().trim_start_matches("0x").chars().filter(|c| !matches!(c, ' ' | ':' | '-' | '_')).collect();
    if t.len() % 2 != 0 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{what} '{s}' is not hex bytes (e.g. 0a000001)");
    }
    Ok((0..t.len()).step_by(2).map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("checked hex")).collect())
}

fn entry(key: &[u8], vals: Vec<Vec<u8>>, percpu: bool) -> Entry {
    if percpu {
        Entry { key: hex(key), typed: None, value: None, values: Some(vals.iter().map(|v| hex(v)).collect()) }
    } else {
        Entry { key: hex(key), typed: None, value: vals.first().map(|v| hex(v)), values: None }
    }
}

/// The attached filter's maps, through whichever engine runs it.
enum Target {
    Wasm { dev: Device, id: u32, maps: Vec<kmod::MapInfo> },
    Ebpf { maps: Vec<wasmfw_ebpf::rawmap::RawMap> },
}

impl Target {
    fn find(iface: &str) -> Result<Target> {
        let ns = netns::current()?;
        match crate::attachments::attached_here(ns, iface)? {
            crate::attachments::Attached::Wasm(id) => {
                let dev = Device::open()?;
                let maps = dev.maps(id)?;
                Ok(Target::Wasm { dev, id, maps })
            }
            crate::attachments::Attached::Ebpf(prog_id) => {
                Ok(Target::Ebpf { maps: wasmfw_ebpf::rawmap::maps_of_prog(prog_id)? })
            }
        }
    }

    fn list(&self) -> Vec<MapDesc> {
        match self {
            Target::Wasm { maps, .. } => maps
                .iter()
                .map(|m| MapDesc {
                    name: m.name(),
                    kind: match m.kind {
                        kmod::MAP_HASH => "hash",
                        kmod::MAP_PERCPU_ARRAY => "percpu_array",
                        _ => "unknown",
                    }
                    .into(),
                    key_size: m.key_size as usize,
                    value_size: m.value_size as usize,
                    max_entries: m.max_entries,
                })
                .collect(),
            Target::Ebpf { maps } => maps
                .iter()
                .map(|m| MapDesc {
                    name: m.name.clone(),
                    kind: m.kind.clone(),
                    key_size: m.key_size,
                    value_size: m.value_size,
                    max_entries: m.max_entries,
                })
                .collect(),
        }
    }

    fn desc(&self, name: &str) -> Result<MapDesc> {
        let all = self.list();
        let names: Vec<String> = all.iter().map(|m| m.name.clone()).collect();
        all.into_iter().find(|m| m.name == name).ok_or_else(|| {
            anyhow!(
                "the filter has no map '{name}' (it has: {})",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            )
        })
    }

    fn dump(&self, name: &str) -> Result<Vec<Entry>> {
        self.desc(name)?;
        match self {
            Target::Wasm { dev, id, maps } => {
                let m = maps.iter().find(|m| m.name() == name).expect("desc found it");
                let recs = dev.map_dump(*id, m)?;
                if m.kind == kmod::MAP_PERCPU_ARRAY {
                    // Records come per (cpu, index): gather each index's CPUs.
                    let mut by_key: std::collections::BTreeMap<Vec<u8>, Vec<(u32, Vec<u8>)>> = Default::default();
                    for (cpu, k, v) in recs {
                        by_key.entry(k).or_default().push((cpu, v));
                    }
                    Ok(by_key
                        .into_iter()
                        .map(|(k, mut vs)| {
                            vs.sort_by_key(|(c, _)| *c);
                            entry(&k, vs.into_iter().map(|(_, v)| v).collect(), true)
                        })
                        .collect())
                } else {
                    Ok(recs.into_iter().map(|(_, k, v)| entry(&k, vec![v], false)).collect())
                }
            }
            Target::Ebpf { maps } => {
                let m = maps.iter().find(|m| m.name == name).expect("desc found it");
                let mut out = Vec::new();
                for k in m.keys()? {
                    if let Some(v) = m.lookup(&k)? {
                        out.push(entry(&k, v, m.cpus > 1));
                    }
                }
                Ok(out)
            }
        }
    }

    fn get(&self, name: &str, key: &[u8]) -> Result<Option<Entry>> {
        let d = self.desc(name)?;
        if key.len() != d.key_size {
            bail!("map {name}: the key is {} bytes, {} given", d.key_size, key.len());
        }
        match self {
            Target::Ebpf { maps } => {
                let m = maps.iter().find(|m| m.name == name).expect("desc found it");
                Ok(m.lookup(key)?.map(|v| entry(key, v, m.cpus > 1)))
            }
            // The module has no lookup ioctl: find the key in a dump.
            Target::Wasm { .. } => Ok(self.dump(name)?.into_iter().find(|e| e.key == hex(key))),
        }
    }

    fn set(&self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let d = self.desc(name)?;
        if key.len() != d.key_size {
            bail!("map {name}: the key is {} bytes, {} given", d.key_size, key.len());
        }
        if value.len() != d.value_size {
            bail!("map {name}: the value is {} bytes, {} given", d.value_size, value.len());
        }
        match self {
            Target::Ebpf { maps } => maps.iter().find(|m| m.name == name).expect("desc found it").update(key, value),
            Target::Wasm { dev, id, .. } => match dev.map_op(*id, name, key, Some(value))? {
                0 => Ok(()),
                r => bail!("map {name}: the module refused the update ({})", abi_error(r)),
            },
        }
    }

    fn del(&self, name: &str, key: &[u8]) -> Result<bool> {
        let d = self.desc(name)?;
        if key.len() != d.key_size {
            bail!("map {name}: the key is {} bytes, {} given", d.key_size, key.len());
        }
        match self {
            Target::Ebpf { maps } => maps.iter().find(|m| m.name == name).expect("desc found it").delete(key),
            Target::Wasm { dev, id, .. } => match dev.map_op(*id, name, key, None)? {
                1 => Ok(true),
                0 => Ok(false),
                r => bail!("map {name}: the module refused the delete ({})", abi_error(r)),
            },
        }
    }
}

impl Target {
    /// The typed form of map `name`'s keys, if it is a list map.
    fn form(&self, name: &str) -> Option<typed::Form> {
        self.desc(name).ok().and_then(|d| typed::form_of(name, d.key_size))
    }

    /// A key given on the command line: typed for list maps (unless `0x`
    /// hex), else hex; prefix keys get their host bits cleared.
    fn key(&self, name: &str, s: &str) -> Result<Vec<u8>> {
        let d = self.desc(name)?;
        let form = self.form(name);
        // A key as `map dump` prints it: a name key's exact hex (no dot), so
        // a dumped key can be pasted back (no one blocks a 32-hex-digit TLD).
        let t = s.trim();
        let dumped =
            form == Some(typed::Form::Name) && t.len() == 2 * d.key_size && t.bytes().all(|b| b.is_ascii_hexdigit());
        // Typed first (`8080` is a port, not two hex bytes); hex if that fails.
        let mut key = match form {
            Some(f) if !t.starts_with("0x") && !dumped => match typed::parse(f, s) {
                Ok(k) => k,
                Err(e) => parse_hex(s, "key").map_err(|_| anyhow!("map {name}: {e}"))?,
            },
            _ => parse_hex(s, "key")?,
        };
        if let Some(f) = form {
            typed::normalize(f, &mut key).map_err(|e| anyhow!("map {name}: {e}"))?;
        }
        Ok(key)
    }

    /// Adds the typed form to dumped entries.
    fn describe(&self, name: &str, entries: &mut [Entry]) {
        if let Some(f) = self.form(name) {
            for e in entries {
                e.typed = parse_hex(&e.key, "key").ok().and_then(|k| typed::describe(f, &k));
            }
        }
    }

    /// After an edit of a prefix or name map, rewrites its `<name>_lens`
    /// mask (the Wasm filters declare one; the eBPF twins do not) from the
    /// keys now in the map, so the filter looks up every length present.
    fn sync_lens(&self, name: &str) -> Result<()> {
        let lens = format!("{name}_lens");
        let (Some(form), Ok(d)) = (self.form(name), self.desc(&lens)) else { return Ok(()) };
        if d.key_size != 4 || d.value_size != typed::LENS_BYTES {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = self.dump(name)?.iter().map(|e| parse_hex(&e.key, "key")).collect::<Result<_>>()?;
        let Some(mask) = typed::lens_mask(form, keys.iter().map(Vec::as_slice)) else { return Ok(()) };
        self.set(&lens, &0u32.to_le_bytes(), &mask)
    }
}

/// The filter ABI's map error codes (docs/filter-abi.md).
fn abi_error(code: i32) -> String {
    match code {
        wasmfw_engine::abi::E_FULL => "map full".into(),
        wasmfw_engine::abi::E_NOENT => "no such key or map".into(),
        wasmfw_engine::abi::E_INVAL => "invalid key or value".into(),
        c => format!("ABI error {c}"),
    }
}

pub fn run(cmd: &MapCmd, json: bool) -> Result<()> {
    crate::access::check_privileges("reading or changing a filter's maps")?;
    let print = |v: &dyn erased::Json, text: &dyn Fn()| -> Result<()> {
        if json {
            println!("{}", v.to_json()?);
        } else {
            text();
        }
        Ok(())
    };
    match cmd {
        MapCmd::List { iface, .. } => {
            let l = Target::find(iface)?.list();
            print(&l, &|| {
                println!("{:<16} {:<13} {:>4} {:>6} {:>8}", "NAME", "KIND", "KEY", "VALUE", "ENTRIES");
                for m in &l {
                    println!(
                        "{:<16} {:<13} {:>4} {:>6} {:>8}",
                        m.name, m.kind, m.key_size, m.value_size, m.max_entries
                    );
                }
            })
        }
        MapCmd::Dump { iface, name, .. } => {
            let t = Target::find(iface)?;
            let mut l = t.dump(name)?;
            t.describe(name, &mut l);
            print(&l, &|| {
                for e in &l {
                    print_entry(e);
                }
                println!("{} entries", l.len());
            })
        }
        MapCmd::Get { iface, name, key, .. } => {
            let t = Target::find(iface)?;
            let key = t.key(name, key)?;
            let mut e = t.get(name, &key)?.ok_or_else(|| anyhow!("map {name}: no key {}", hex(&key)))?;
            t.describe(name, std::slice::from_mut(&mut e));
            print(&e, &|| print_entry(&e))
        }
        MapCmd::Set { iface, name, key, value, .. } => {
            let t = Target::find(iface)?;
            let k = t.key(name, key)?;
            let v = match (value, t.form(name)) {
                (Some(v), _) => parse_hex(v, "value")?,
                (None, Some(_)) => vec![1],
                (None, None) => bail!("map {name}: give a VALUE (hex bytes, the map's value size)"),
            };
            t.set(name, &k, &v)?;
            t.sync_lens(name)?;
            let r = serde_json::json!({"map": name, "key": hex(&k), "value": hex(&v), "set": true});
            print(&r, &|| println!("{name}[{}] = {}", hex(&k), hex(&v)))
        }
        MapCmd::Del { iface, name, key, .. } => {
            let t = Target::find(iface)?;
            let k = t.key(name, key)?;
            let deleted = t.del(name, &k)?;
            t.sync_lens(name)?;
            let r = serde_json::json!({"map": name, "key": hex(&k), "deleted": deleted});
            print(&r, &|| println!("{name}[{}] {}", hex(&k), if deleted { "deleted" } else { "was not there" }))
        }
    }
}

fn print_entry(e: &Entry) {
    match (&e.value, &e.values) {
        (Some(v), _) => println!("key {}{} value {v}", e.key, typed_note(e)),
        (_, Some(vs)) => println!(
            "key {}{} values {}",
            e.key,
            typed_note(e),
            vs.iter().enumerate().map(|(c, v)| format!("cpu{c}={v}")).collect::<Vec<_>>().join(" ")
        ),
        _ => println!("key {}{}", e.key, typed_note(e)),
    }
}

fn typed_note(e: &Entry) -> String {
    e.typed.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
}

/// Serialize behind a trait object, for the one printing helper above.
mod erased {
    pub trait Json {
        fn to_json(&self) -> anyhow::Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> anyhow::Result<String> {
            Ok(serde_json::to_string_pretty(self)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_list_map;

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
