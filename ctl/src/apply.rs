//! `wasmfw apply DIR`: makes the filters attached in this network
//! namespace equal to the policies in a directory (`*.toml`, each naming
//! its interfaces), like `nft -f` at boot. Idempotent: a second run
//! changes nothing. An attachment is kept when the same policy file (by
//! path) and engine already run on that interface; after editing a policy
//! in place, `wasmfw load POLICY --replace` picks the edit up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasmfw_policy::Policy;

use crate::args::{LoadArgs, XdpMode};
use crate::engines::Engine;
use crate::{engines, manage, netns};

#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Action {
    Load,
    Replace,
    Unload,
    Unchanged,
}

#[derive(Serialize)]
struct Change {
    action: Action,
    iface: String,
    policy: Option<String>,
    /// What ran there before (replace, unload).
    #[serde(skip_serializing_if = "Option::is_none")]
    was: Option<String>,
}

/// The policies of `dir`, by interface.
fn desired(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut want: BTreeMap<String, PathBuf> = BTreeMap::new();
    for f in files {
        let policy = Policy::load(&f).map_err(|e| anyhow::anyhow!("{e}"))?;
        if policy.ifaces.is_empty() {
            bail!("{}: no `iface`: apply needs every policy to name its interfaces", f.display());
        }
        let abs = std::fs::canonicalize(&f).unwrap_or(f.clone());
        for i in policy.ifaces {
            if let Some(other) = want.insert(i.clone(), abs.clone()) {
                bail!("{} and {} both name interface {i}", other.display(), abs.display());
            }
        }
    }
    Ok(want)
}

pub fn run(dir: &Path, engine: Engine, mode: XdpMode, dry_run: bool, json: bool) -> Result<()> {
    if !engine.applies() {
        bail!("apply is not supported by the {} engine yet (use --engine wasm or ebpf)", engine.name());
    }
    let want = desired(dir)?;
    let ns = netns::current()?;
    let have: BTreeMap<String, (Option<String>, String)> =
        engines::entries_in(ns)?.into_iter().map(|e| (e.iface.clone(), (e.policy.clone(), e.engine.clone()))).collect();
    let mut changes = Vec::new();
    for (iface, policy) in &want {
        let p = Some(policy.display().to_string());
        let c = match have.get(iface) {
            None => Change { action: Action::Load, iface: iface.clone(), policy: p, was: None },
            Some((cur, eng)) if *cur == p && eng == engine.name() => {
                Change { action: Action::Unchanged, iface: iface.clone(), policy: p, was: None }
            }
            Some((cur, eng)) => Change {
                action: Action::Replace,
                iface: iface.clone(),
                policy: p,
                was: Some(format!("{} ({eng})", cur.as_deref().unwrap_or("a bare filter"))),
            },
        };
        changes.push(c);
    }
    for (iface, (cur, eng)) in &have {
        if !want.contains_key(iface) {
            changes.push(Change {
                action: Action::Unload,
                iface: iface.clone(),
                policy: None,
                was: Some(format!("{} ({eng})", cur.as_deref().unwrap_or("a bare filter"))),
            });
        }
    }
    if !dry_run {
        manage::set_quiet(true);
        let result = apply(&changes, engine, mode);
        manage::set_quiet(false);
        result?;
    }
    let n = changes.iter().filter(|c| c.action != Action::Unchanged).count();
    if json {
        println!(
            "{}",
            serde_json::json!({"netns": netns::display(ns), "dry_run": dry_run, "changed": n, "changes": changes})
        );
        return Ok(());
    }
    for c in &changes {
        let (sign, what) = match c.action {
            Action::Load => ('+', format!("load {}", c.policy.as_deref().unwrap_or_default())),
            Action::Replace => (
                '~',
                format!(
                    "replace {} with {}",
                    c.was.as_deref().unwrap_or_default(),
                    c.policy.as_deref().unwrap_or_default()
                ),
            ),
            Action::Unload => ('-', format!("unload {}", c.was.as_deref().unwrap_or_default())),
            Action::Unchanged => ('=', format!("unchanged {}", c.policy.as_deref().unwrap_or_default())),
        };
        println!("{sign} {:<15} {what}", c.iface);
    }
    println!("{}{n} change(s) in network namespace {}", if dry_run { "dry run: " } else { "" }, netns::display(ns));
    Ok(())
}

fn apply(changes: &[Change], engine: Engine, mode: XdpMode) -> Result<()> {
    for c in changes {
        let args = |replace: bool| LoadArgs {
            target: PathBuf::from(c.policy.clone().unwrap_or_default()),
            iface: Some(c.iface.clone()),
            engine,
            hook: None,
            mode,
            replace,
            audit: false,
            keep_maps: false,
        };
        match c.action {
            Action::Unchanged => {}
            Action::Load => manage::load(&args(false), false)?,
            Action::Unload => manage::unload(&c.iface, false)?,
            // Both engines swap atomically; a change of engine detaches first.
            Action::Replace => {
                let same = format!("({})", engine.name());
                let swap = c.was.as_deref().is_some_and(|w| w.ends_with(&same));
                if !swap {
                    manage::unload(&c.iface, false)?;
                }
                manage::load(&args(swap), false)?;
            }
        }
    }
    Ok(())
}
