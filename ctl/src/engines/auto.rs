//! `--engine auto`: the compiled engine when the running kernel's verifier
//! accepts the filter's translation, else the kernel module's interpreter
//! (`wasm`) if wasmfw.ko is loaded, else an error quoting the verifier.
//! It attaches nothing of its own: what it loads belongs to the engine it
//! picked (`status` names that one), so it lists and finds nothing.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use wasmfw_policy::Hook;

use super::compiled;
use super::kmod::Kmod;
use super::{by_name, Engine};
use crate::backend::{Attachment, Backend, Detached, LoadRequest, Prepared, Report};
use crate::kmod::DEVICE;
use crate::records::Entry;

/// The engine that picks one.
pub struct Auto;

/// `--engine`'s value.
const NAME: &str = "auto";

impl Backend for Auto {
    fn name(&self) -> &'static str {
        NAME
    }

    fn about(&self) -> &'static str {
        "Compiled if the kernel's verifier accepts the translation, else wasm if wasmfw.ko is loaded"
    }

    fn prepare(&self, target: &Path) -> Result<Box<dyn Prepared>> {
        Ok(Box::new(Target { compiled: compiled::Target::read(target)?, path: target.to_path_buf() }))
    }

    fn make_room(&self, _ns: u64, _iface: &str) -> Result<()> {
        Ok(())
    }

    fn detach(&self, _ns: u64, _iface: &str) -> Result<Option<Detached>> {
        Ok(None)
    }

    fn list(&self, _only: Option<(u64, &str)>) -> Result<Vec<Entry>> {
        Ok(Vec::new())
    }

    /// Not yet: `apply`'s "unchanged" test compares engines by name.
    fn applies(&self) -> bool {
        false
    }

    fn find(&self, _ns: u64, _iface: &str) -> Result<Option<Box<dyn Attachment>>> {
        Ok(None)
    }
}

struct Target {
    compiled: compiled::Target,
    path: PathBuf,
}

/// `req` as the engine named `name` must see it: every engine but that one
/// asked to make room.
fn request_for(req: &LoadRequest, name: &str) -> LoadRequest {
    let engine: Engine = by_name(name).expect("a listed engine");
    LoadRequest {
        mode: req.mode,
        replace: req.replace,
        audit: req.audit,
        keep_maps: req.keep_maps,
        others: engine.others(),
    }
}

impl Prepared for Target {
    fn ifaces(&self) -> &[String] {
        &self.compiled.policy().ifaces
    }

    fn hook(&self) -> Hook {
        self.compiled.policy().hook
    }

    fn attach(&self, req: &LoadRequest, iface: &str, hook: Hook) -> Result<Report> {
        let refused = if hook != Hook::Xdp {
            format!("the compiled engine attaches at the xdp hook only, not {}", hook.as_str())
        } else {
            match self.compiled.load(req.audit) {
                Ok(loaded) => {
                    let mut r = self.compiled.attach_loaded(loaded, &request_for(req, compiled::NAME), iface)?;
                    r.value["attached"]["chosen_by"] = NAME.into();
                    return Ok(r);
                }
                Err(e) => format!("{e:#}"),
            }
        };
        if !Path::new(DEVICE).exists() {
            bail!(
                "{refused}; and the wasmfw kernel module is not loaded (no {DEVICE}), so its interpreter cannot run it \
                 either: insmod wasmfw.ko (then --engine auto or wasm runs it there), or fix the filter (docs/compiled.md, \
                 \"Refused, and why\")"
            );
        }
        let mut r = Kmod.prepare(&self.path)?.attach(&request_for(req, Kmod.name()), iface, hook)?;
        r.text = format!("{}\n  (engine wasm, not compiled: {refused})", r.text);
        r.value["attached"]["chosen_by"] = NAME.into();
        r.value["attached"]["fallback_reason"] = refused.into();
        Ok(r)
    }
}
