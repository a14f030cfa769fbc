//! `wasmfw map list|dump|get|set|del --iface IF`: the maps of the filter
//! attached on an interface of this network namespace, for either engine,
//! like `bpftool map`. Keys and values are hex bytes of exactly the sizes
//! the filter declared (`0a000001`, `0x0a000001` or `0a 00 00 01`); the
//! list maps (`blocked_ports`, `allow`, `dns_names`, ...) also take typed
//! keys (`443`, `10.0.0.0/8`, `ads.example.com`, see [`typed`]). The next
//! packet sees a change.

use anyhow::{anyhow, bail, Result};

use crate::args::MapCmd;
use crate::backend::{hex, MapDesc, MapEntry as Entry, Maps};
use crate::list_maps as typed;
use crate::{engines, netns};

/// Parses hex bytes (`0a000001`, `0x0a000001`, `0a:00:00:01`, `0a 00 00 01`).
pub fn parse_hex(s: &str, what: &str) -> Result<Vec<u8>> {
    let t: String = s.trim().trim_start_matches("0x").chars().filter(|c| !matches!(c, ' ' | ':' | '-' | '_')).collect();
    if !t.len().is_multiple_of(2) || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{what} '{s}' is not hex bytes (e.g. 0a000001)");
    }
    Ok((0..t.len()).step_by(2).map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("checked hex")).collect())
}

/// The attached filter's maps, through whichever engine runs it; names,
/// key and value sizes are checked here, for every engine.
struct Target(Box<dyn Maps>);

impl Target {
    fn find(iface: &str) -> Result<Target> {
        let (_, filter) = engines::attached(netns::current()?, iface)?;
        Ok(Target(filter.maps()?))
    }

    fn list(&self) -> Vec<MapDesc> {
        self.0.list()
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

    /// `name`'s description, with `key` checked against its key size.
    fn keyed(&self, name: &str, key: &[u8]) -> Result<MapDesc> {
        let d = self.desc(name)?;
        if key.len() != d.key_size {
            bail!("map {name}: the key is {} bytes, {} given", d.key_size, key.len());
        }
        Ok(d)
    }

    fn dump(&self, name: &str) -> Result<Vec<Entry>> {
        self.desc(name)?;
        self.0.dump(name)
    }

    fn get(&self, name: &str, key: &[u8]) -> Result<Option<Entry>> {
        self.keyed(name, key)?;
        self.0.get(name, key)
    }

    fn set(&self, name: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let d = self.keyed(name, key)?;
        if value.len() != d.value_size {
            bail!("map {name}: the value is {} bytes, {} given", d.value_size, value.len());
        }
        self.0.set(name, key, value)
    }

    fn del(&self, name: &str, key: &[u8]) -> Result<bool> {
        self.keyed(name, key)?;
        self.0.del(name, key)
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
