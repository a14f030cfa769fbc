//! `wasmfw-bench report`: merges the host run (`wasmfw-bench --json`), the
//! guest's kernel paths (`wasmfw-bench guest`) and the guest's throughput
//! lines (kmod/tests/bench-throughput-guest.sh) into one table on stdout,
//! `results.json` and `results.svg` (grouped bars, log scale), in `--out`.
//! `cargo xtask bench` (xtask/src/bench.rs) produces the inputs and calls it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{json, Value};

/// One row of the table: a filter on one packet, every path.
struct Row {
    filter: String,
    packet: String,
    bytes: u64,
    verdict: String,
    fuel: Option<u64>,
    /// Host: Wasm engine in userspace, native Rust in userspace, eBPF twin (JIT).
    user_wasm: Option<f64>,
    user_native: Option<f64>,
    ebpf_jit: Option<f64>,
    /// Host: an empty XDP program the same way (the test-run loop's cost).
    xdp_empty_host: Option<f64>,
    /// Guest (UML): the Wasm filter in the module via its test-run ioctl,
    /// via xdp-bridge, the native kfunc via xdp-bridge, the eBPF twin
    /// (interpreted in UML), an empty XDP program.
    kern_wasm: Option<f64>,
    bridge_wasm: Option<f64>,
    bridge_native: Option<f64>,
    ebpf_guest: Option<f64>,
    xdp_empty_guest: Option<f64>,
}

fn read_json(p: &Path) -> Result<Option<Value>> {
    if !p.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(p)?;
    Ok(Some(serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))?))
}

/// JSON lines (one object each); a missing file gives none.
fn read_lines(p: &Path) -> Result<Vec<Value>> {
    if !p.is_file() {
        return Ok(Vec::new());
    }
    std::fs::read_to_string(p)?
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).with_context(|| format!("{}: {l}", p.display())))
        .collect()
}

fn stat(v: &Value, stat: &str) -> Option<f64> {
    v.get(if stat == "min" { "min_ns" } else { "median_ns" }).and_then(Value::as_f64)
}

fn rows(host: Option<&Value>, guest: Option<&Value>) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    let hstat = host.and_then(|h| h["stat"].as_str()).unwrap_or("median").to_string();
    for r in host.and_then(|h| h["rows"].as_array()).into_iter().flatten() {
        out.push(Row {
            filter: r["filter"].as_str().unwrap_or("?").into(),
            packet: r["packet"].as_str().unwrap_or("?").into(),
            bytes: r["bytes"].as_u64().unwrap_or(0),
            verdict: r["verdict"].as_str().unwrap_or("?").into(),
            fuel: r["fuel"].as_u64(),
            user_wasm: stat(&r["wasm"], &hstat),
            user_native: stat(&r["native"], &hstat),
            ebpf_jit: stat(&r["ebpf"], &hstat),
            xdp_empty_host: stat(&r["xdp_empty"], &hstat),
            kern_wasm: None,
            bridge_wasm: None,
            bridge_native: None,
            ebpf_guest: None,
            xdp_empty_guest: None,
        });
    }
    for g in guest.and_then(|g| g["rows"].as_array()).into_iter().flatten() {
        let (f, p) = (g["filter"].as_str().unwrap_or("?"), g["packet"].as_str().unwrap_or("?"));
        let i = match out.iter().position(|r| r.filter == f && r.packet == p) {
            Some(i) => i,
            None => {
                out.push(Row {
                    filter: f.into(),
                    packet: p.into(),
                    bytes: g["bytes"].as_u64().unwrap_or(0),
                    verdict: g["verdict"].as_str().unwrap_or("?").into(),
                    fuel: None,
                    user_wasm: None,
                    user_native: None,
                    ebpf_jit: None,
                    xdp_empty_host: None,
                    kern_wasm: None,
                    bridge_wasm: None,
                    bridge_native: None,
                    ebpf_guest: None,
                    xdp_empty_guest: None,
                });
                out.len() - 1
            }
        };
        let r = &mut out[i];
        r.kern_wasm = g["test_run_ns"].as_f64();
        r.bridge_wasm = g["bridge_wasm_ns"].as_f64();
        r.bridge_native = g["bridge_native_ns"].as_f64();
        r.ebpf_guest = g["ebpf_ns"].as_f64();
        r.xdp_empty_guest = g["xdp_empty_ns"].as_f64();
    }
    out
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Throughput of one configuration in the guest: its best flood.
struct Tput {
    config: String,
    pps: f64,
    received: u64,
    sent: u64,
    secs: f64,
    /// packets/s of every flood (round) of this configuration.
    rounds: Vec<f64>,
}

/// One `Tput` per configuration, in first-seen order, from the guest's
/// lines (one per flood; configurations are flooded round-robin).
fn tputs(lines: &[Value]) -> Vec<Tput> {
    let mut out: Vec<Tput> = Vec::new();
    for l in lines {
        let received = l["received"].as_u64().unwrap_or(0);
        let secs = l["secs"].as_f64().unwrap_or(0.0);
        let pps = if secs > 0.0 { received as f64 / secs } else { 0.0 };
        let config = l["config"].as_str().unwrap_or("?").to_string();
        let best =
            Tput { config: config.clone(), pps, received, sent: l["sent"].as_u64().unwrap_or(0), secs, rounds: vec![] };
        match out.iter_mut().find(|t| t.config == config) {
            Some(t) => {
                t.rounds.push(pps);
                if pps > t.pps {
                    let rounds = std::mem::take(&mut t.rounds);
                    *t = Tput { rounds, ..best };
                }
            }
            None => out.push(Tput { rounds: vec![pps], ..best }),
        }
    }
    out
}

pub fn run(dir: &Path, out: &Path) -> Result<()> {
    let host = read_json(&dir.join("host.json"))?;
    let guest = read_json(&dir.join("guest-uml.json"))?;
    let tp = tputs(&read_lines(&dir.join("throughput-uml.jsonl"))?);
    let source = read_json(&dir.join("source.json"))?;
    let rows = rows(host.as_ref(), guest.as_ref());
    let cpu = host.as_ref().and_then(|h| h["host"]["cpu"].as_str()).unwrap_or("?").to_string();
    let kernel = host.as_ref().and_then(|h| h["host"]["kernel"].as_str()).unwrap_or("?").to_string();
    let jit = host.as_ref().and_then(|h| h["host"]["bpf_jit"].as_str()).unwrap_or("?").to_string();
    let gkernel = guest.as_ref().and_then(|g| g["kernel"].as_str()).unwrap_or("?").to_string();
    let grepeat = guest.as_ref().and_then(|g| g["repeat"].as_u64()).unwrap_or(0);
    let grounds = guest.as_ref().and_then(|g| g["rounds"].as_u64()).unwrap_or(1);

    // ---- the table -------------------------------------------------------------
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let x = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}x"));
    println!("wasmfw bench: ns per packet (lower is better), one run on a shared 2-core VM ({cpu}) with other builds running:");
    println!("expect 10-20% noise. Ratios are Wasm/eBPF on the same row.");
    if let Some(s) = &source {
        let dirty = if s["kmod_or_filters_uncommitted"].as_bool() == Some(true) {
            " + uncommitted changes under kmod/ or filters/"
        } else {
            ""
        };
        println!("  source: commit {}{dirty}", s["commit"].as_str().unwrap_or("?"));
    }
    println!("  HOST (kernel {kernel}, eBPF {jit}), median of rounds:");
    println!("    user-wasm  the Wasm filter in wasmfw-engine (wasmi) in userspace   native  the same logic in plain Rust, userspace");
    println!("    ebpf-jit   the eBPF twin, BPF_PROG_TEST_RUN, JIT                   w/e     user-wasm / ebpf-jit");
    println!("    h-empty    an empty XDP program the same way: the test-run loop's own cost, inside ebpf-jit");
    println!("  UML GUEST (kernel {gkernel}; module code at native speed on this CPU), fastest of {grounds} rounds of {grepeat} runs");
    println!("    (UML's clock runs on while the host deschedules it: the fastest round is the least disturbed):");
    println!("    kmod-wasm  the Wasm filter in wasmfw.ko, the module's test-run ioctl (wasmfw test-run)");
    println!("    k/e        kmod-wasm / ebpf-jit (kernel Wasm engine against the host's JIT-compiled twin)");
    println!("    br+wasm    xdp-bridge -> kfunc wasmfw_xdp_run -> the Wasm filter, BPF_PROG_TEST_RUN");
    println!("    br+native  xdp-bridge -> kfunc wasmfw_xdp_native_icmp (native Rust in the module; icmp_drop only)");
    println!(
        "    ebpf-INT   the eBPF twin in UML: INTERPRETED (UML has no eBPF JIT)   empty  empty XDP program in UML"
    );
    println!();
    println!(
        "{:<10} {:<28} {:>5} {:<7} {:>5} | {:>9} {:>6} {:>8} {:>7} {:>6} | {:>9} {:>6} | {:>7} {:>9} {:>8} {:>5}",
        "filter",
        "packet",
        "bytes",
        "verdict",
        "fuel",
        "user-wasm",
        "native",
        "ebpf-jit",
        "h-empty",
        "w/e",
        "kmod-wasm",
        "k/e",
        "br+wasm",
        "br+native",
        "ebpf-INT",
        "empty"
    );
    println!("{}", "-".repeat(158));
    for r in &rows {
        println!(
            "{:<10} {:<28} {:>5} {:<7} {:>5} | {:>9} {:>6} {:>8} {:>7} {:>6} | {:>9} {:>6} | {:>7} {:>9} {:>8} {:>5}",
            r.filter,
            r.packet,
            r.bytes,
            r.verdict,
            r.fuel.map_or("-".into(), |v| v.to_string()),
            f(r.user_wasm),
            f(r.user_native),
            f(r.ebpf_jit),
            f(r.xdp_empty_host),
            x(ratio(r.user_wasm, r.ebpf_jit)),
            f(r.kern_wasm),
            x(ratio(r.kern_wasm, r.ebpf_jit)),
            f(r.bridge_wasm),
            f(r.bridge_native),
            f(r.ebpf_guest),
            f(r.xdp_empty_guest),
        );
    }
    if !tp.is_empty() {
        let base = tp.iter().find(|t| t.config == "no filter").map(|t| t.pps);
        println!();
        println!("Throughput in the UML guest: 64-byte ICMP echo requests flooded over a veth pair (va -> vb) with AF_PACKET");
        println!(
            "sendmmsg for a fixed time; received = vb's rx_packets; every filter drops them, with no filter the stack"
        );
        println!(
            "ignores them (icmp_echo_ignore_all). UML is one CPU: sender and receiver share it, so this is the cost of"
        );
        println!(
            "the whole path per packet, and the eBPF twin here is INTERPRETED. Best of {} floods per configuration,",
            tp[0].rounds.len()
        );
        println!("taken round-robin; XDP in native (driver) mode unless it says skb. On veth, native XDP first turns the skb");
        println!("into an XDP buffer (a copy), which a NIC driver would not do: compare the XDP rows with each other.");
        println!(
            "{:<40} {:>12} {:>12} {:>12} {:>7} {:>12}",
            "configuration", "packets/s", "received", "sent", "secs", "vs no filter"
        );
        for t in &tp {
            println!(
                "{:<40} {:>12.0} {:>12} {:>12} {:>7.1} {:>12}",
                t.config,
                t.pps,
                t.received,
                t.sent,
                t.secs,
                base.map_or("-".into(), |b| format!("{:.2}", t.pps / b))
            );
        }
    }

    // ---- results.json ------------------------------------------------------------------
    std::fs::create_dir_all(out)?;
    let j = json!({
        "what": "ns per packet per path (lower is better); throughput in packets/s; one run on a shared 2-core VM",
        "source": source,
        "host": host.as_ref().map(|h| h["host"].clone()),
        "guest": guest.as_ref().map(|g| json!({"guest": g["guest"], "kernel": g["kernel"], "repeat": g["repeat"],
            "note": "UML: module code at native speed; eBPF interpreted (no JIT)"})),
        "columns": {
            "user_wasm_ns": "host, wasmfw-engine in userspace", "user_native_ns": "host, plain Rust in userspace",
            "ebpf_jit_ns": "host, eBPF twin via BPF_PROG_TEST_RUN, JIT",
            "xdp_empty_host_ns": "host, empty XDP program via BPF_PROG_TEST_RUN (included in ebpf_jit_ns)",
            "kmod_wasm_ns": "UML guest, Wasm filter in wasmfw.ko via the module's test-run ioctl",
            "bridge_wasm_ns": "UML guest, xdp-bridge + Wasm filter via BPF_PROG_TEST_RUN",
            "bridge_native_ns": "UML guest, xdp-bridge + native Rust kfunc (icmp_drop only)",
            "ebpf_interpreted_ns": "UML guest, eBPF twin via BPF_PROG_TEST_RUN, INTERPRETED",
            "xdp_empty_guest_ns": "UML guest, empty XDP program",
        },
        "rows": rows.iter().map(|r| json!({
            "filter": r.filter, "packet": r.packet, "bytes": r.bytes, "verdict": r.verdict, "fuel": r.fuel,
            "user_wasm_ns": r.user_wasm, "user_native_ns": r.user_native, "ebpf_jit_ns": r.ebpf_jit, "xdp_empty_host_ns": r.xdp_empty_host,
            "kmod_wasm_ns": r.kern_wasm, "bridge_wasm_ns": r.bridge_wasm, "bridge_native_ns": r.bridge_native,
            "ebpf_interpreted_ns": r.ebpf_guest, "xdp_empty_guest_ns": r.xdp_empty_guest,
            "user_wasm_over_ebpf_jit": ratio(r.user_wasm, r.ebpf_jit),
            "kmod_wasm_over_ebpf_jit": ratio(r.kern_wasm, r.ebpf_jit),
        })).collect::<Vec<_>>(),
        "throughput_uml_note": "best flood per configuration (pps, received, sent, secs of that flood); rounds_pps: every flood",
        "throughput_uml": tp.iter().map(|t| json!({"config": t.config, "pps": t.pps, "received": t.received,
            "sent": t.sent, "secs": t.secs, "rounds_pps": t.rounds})).collect::<Vec<_>>(),
        "raw": {"host": host, "guest_uml": guest},
    });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&j)?)?;
    let svg = out.join("results.svg");
    chart(&svg, &rows, &tp, &cpu).map_err(|e| anyhow::anyhow!("drawing {}: {e}", svg.display()))?;
    println!();
    println!("wrote {} and {}", out.join("results.json").display(), svg.display());
    Ok(())
}

type Series = (&'static str, RGBColor, fn(&Row) -> Option<f64>);

const SERIES: [Series; 7] = [
    ("host: Wasm engine, userspace", RGBColor(230, 159, 0), |r| r.user_wasm),
    ("host: native Rust, userspace", RGBColor(150, 150, 150), |r| r.user_native),
    ("host: eBPF twin, JIT", RGBColor(0, 114, 178), |r| r.ebpf_jit),
    ("UML: Wasm in wasmfw.ko (test-run)", RGBColor(213, 94, 0), |r| r.kern_wasm),
    ("UML: xdp-bridge + Wasm", RGBColor(204, 121, 167), |r| r.bridge_wasm),
    ("UML: xdp-bridge + native kfunc", RGBColor(0, 158, 115), |r| r.bridge_native),
    ("UML: eBPF twin, INTERPRETED (no JIT)", RGBColor(86, 180, 233), |r| r.ebpf_guest),
];

fn chart(path: &PathBuf, rows: &[Row], tp: &[Tput], cpu: &str) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (1500, 1150)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(800);
    let n = rows.len().max(1) as f64;
    let ymax = rows.iter().flat_map(|r| SERIES.iter().filter_map(move |s| (s.2)(r))).fold(10.0f64, f64::max) * 3.0;
    let mut c = ChartBuilder::on(&top)
        .caption(
            format!("wasmfw: ns per packet by filter and packet (log scale, lower is better); {cpu}, shared 2-core VM"),
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(250)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, (1f64..ymax).log_scale())?;
    c.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ns per packet")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let w = 0.8 / SERIES.len() as f64;
    for (s, (name, color, get)) in SERIES.iter().enumerate() {
        let color = *color;
        c.draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            get(r).map(|v| {
                let x0 = i as f64 + 0.1 + s as f64 * w;
                Rectangle::new([(x0, 1.0), (x0 + w * 0.9, v.max(1.0))], color.filled())
            })
        }))?
        .label(*name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    // The Wasm/eBPF-JIT ratio of the kernel engine above each group.
    c.draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
        ratio(r.kern_wasm, r.ebpf_jit).map(|k| {
            let top = SERIES.iter().filter_map(|s| (s.2)(r)).fold(1.0, f64::max);
            Text::new(
                format!("kmod/JIT {k:.1}x"),
                (i as f64 + 0.5, top * 1.3),
                ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        })
    }))?;
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    let note = "Missing bars: the native kfunc exists for icmp_drop only; dns_block's eBPF twin needs bpf_loop, which UML's interpreter refuses (callbacks need the JIT). UML runs module code natively on this CPU; x86/qemu TCG (emulated) figures are not in this chart.";
    root.draw(&Text::new(note, (12, 782), ("sans-serif", 12).into_font().color(&BLACK)))?;
    for (i, r) in rows.iter().enumerate() {
        let (px, py) = c.backend_coord(&(i as f64 + 0.5, 1.0));
        let style = ("sans-serif", 13).into_font().transform(FontTransform::Rotate90).color(&BLACK);
        root.draw(&Text::new(format!("{}: {}", r.filter, r.packet), (px - 6, py + 6), style))?;
    }

    // ---- throughput --------------------------------------------------------------------
    if !tp.is_empty() {
        let m = tp.iter().map(|t| t.pps).fold(1.0, f64::max) * 1.25;
        let mut t = ChartBuilder::on(&bottom)
            .caption(
                "Throughput, UML guest: 64 B frames over veth, dropped by the filter (by the stack with none); packets/s, higher is better; one CPU; eBPF INTERPRETED",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..tp.len() as f64, 0f64..m)?;
        t.configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("packets/s")
            .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()?;
        t.draw_series(tp.iter().enumerate().map(|(i, x)| {
            Rectangle::new([(i as f64 + 0.2, 0.0), (i as f64 + 0.8, x.pps)], RGBColor(0, 114, 178).mix(0.8).filled())
        }))?;
        t.draw_series(tp.iter().enumerate().map(|(i, x)| {
            Text::new(
                format!("{:.0} k/s", x.pps / 1000.0),
                (i as f64 + 0.5, x.pps),
                ("sans-serif", 13).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
        for (i, x) in tp.iter().enumerate() {
            let (px, py) = t.backend_coord(&(i as f64 + 0.5, 0.0));
            let style = ("sans-serif", 13).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(x.config.clone(), (px, py + 6), style))?;
        }
    }
    root.present()?;
    Ok(())
}
