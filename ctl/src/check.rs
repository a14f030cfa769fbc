//! `wasmfw check`: everything a load would refuse, refused here first.

use std::path::Path;

use anyhow::Result;
use wasmfw_policy::Policy;

pub fn run(target: &Path, json: bool) -> Result<()> {
    let policy = Policy::load(target)?;
    let loaded = crate::wasm::load(&policy, true)?;
    let (mut maps, mut counters) = (Vec::new(), 0usize);
    loaded.filter.maps(|m| maps.push(format!("{}:{}", m.name.as_str(), m.kind.as_str())));
    loaded.filter.counters(|_, _| counters += 1);
    let own_counters = counters - wasmfw_engine::BUILTIN_COUNTERS.len();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "ok": true, "target": policy.origin(), "filter": policy.filter, "abi": wasmfw_engine::abi::ABI_VERSION,
                "hook": policy.hook.as_str(), "fuel": policy.fuel, "memory_limit": policy.memory_limit,
                "on_fault": policy.on_fault.as_str(), "maps": maps, "counters": own_counters,
            })
        );
        return Ok(());
    }
    println!(
        "ok: {}: filter {} (ABI v{}), hook {}, fuel {}, memory_limit {}, on_fault {}, maps [{}], {} counters",
        policy.origin(),
        policy.filter,
        wasmfw_engine::abi::ABI_VERSION,
        policy.hook.as_str(),
        policy.fuel,
        policy.memory_limit,
        policy.on_fault.as_str(),
        maps.join(", "),
        own_counters,
    );
    Ok(())
}
