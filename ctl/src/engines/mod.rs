//! The engines, listed once ([`ENGINES`]), and what asks all of them:
//! which engine runs on an interface, every attachment, unload. A new
//! engine is one file implementing [`Backend`] and one entry in the list.

mod auto;
mod compiled;
mod ebpf;
mod kmod;
mod recorded;
mod xdp;

use anyhow::{anyhow, Result};

use crate::backend::{Attachment, Backend, Detached};
use crate::netns;
use crate::records::Entry;

/// One engine of [`ENGINES`] (`--engine`'s value type).
#[derive(Clone, Copy)]
pub struct Engine(&'static dyn Backend);

/// Every engine, in `--engine`'s order, the default first. `auto` picks
/// `compiled` or `wasm` at load time and attaches nothing of its own.
pub const ENGINES: &[Engine] =
    &[Engine(&kmod::Kmod), Engine(&ebpf::Ebpf), Engine(&compiled::CompiledEngine), Engine(&auto::Auto)];

/// `--engine`'s default: the kernel module.
pub const DEFAULT: Engine = ENGINES[0];

impl std::ops::Deref for Engine {
    type Target = dyn Backend;
    fn deref(&self) -> &(dyn Backend + 'static) {
        self.0
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for Engine {
    fn eq(&self, other: &Engine) -> bool {
        self.name() == other.name()
    }
}

impl Engine {
    /// The engines other than this one.
    pub fn others(self) -> Vec<&'static dyn Backend> {
        ENGINES.iter().filter(|e| **e != self).map(|e| e.0).collect()
    }
}

/// The engine named `name` (an [`Entry`]'s `engine`).
pub fn by_name(name: &str) -> Option<Engine> {
    ENGINES.iter().copied().find(|e| e.name() == name)
}

/// The order attachments are listed and looked up in: the last engine
/// first, so `status` lists the records (compiled filters, eBPF twins)
/// before the module's filters, and `unload` asks the records before the
/// module.
fn lookup_order() -> impl Iterator<Item = Engine> {
    ENGINES.iter().rev().copied()
}

pub fn nothing_on(iface: &str) -> anyhow::Error {
    anyhow!(
        "nothing attached on {iface} by wasmfw (network namespace {})",
        netns::current().map(netns::display).unwrap_or_default()
    )
}

/// Every attachment, checked against the kernel, with its counters.
/// `only`: one (namespace, interface).
pub fn entries(only: Option<(u64, &str)>) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in lookup_order() {
        out.extend(e.list(only)?);
    }
    Ok(out)
}

/// Every attachment of namespace `ns`, checked against the kernel.
pub fn entries_in(ns: u64) -> Result<Vec<Entry>> {
    Ok(entries(None)?.into_iter().filter(|e| e.netns_ino == ns).collect())
}

/// The filter attached on (`ns`, `iface`) and its engine, checked against the kernel.
pub fn attached(ns: u64, iface: &str) -> Result<(Engine, Box<dyn Attachment>)> {
    for e in lookup_order() {
        if let Some(a) = e.find(ns, iface)? {
            return Ok((e, a));
        }
    }
    Err(nothing_on(iface))
}

/// Detaches whatever wasmfw attached on `iface` of this namespace.
pub fn detach(iface: &str) -> Result<Detached> {
    let ns = netns::current()?;
    for e in lookup_order() {
        if let Some(d) = e.detach(ns, iface)? {
            return Ok(d);
        }
    }
    Err(nothing_on(iface))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_have_distinct_names_and_the_module_is_the_default() {
        let names: Vec<&str> = ENGINES.iter().map(|e| e.name()).collect();
        assert_eq!(names, ["wasm", "ebpf", "compiled", "auto"]);
        assert_eq!(DEFAULT.name(), "wasm");
        assert!(ENGINES.iter().all(|e| by_name(e.name()) == Some(*e)));
        assert!(ENGINES.iter().all(|e| e.others().len() == ENGINES.len() - 1));
        // status lists the records' attachments before the module's.
        assert_eq!(lookup_order().map(|e| e.name()).collect::<Vec<_>>(), ["auto", "compiled", "ebpf", "wasm"]);
    }
}
