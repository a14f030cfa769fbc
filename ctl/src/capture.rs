//! `wasmfw capture --iface IF --verdict drop|pass|fault -w FILE.pcapng`:
//! the packets the filter attached on an interface gave those verdicts,
//! from either engine, into a pcapng file whose every packet carries a
//! comment `wasmfw verdict=drop filter=ID name=NAME cpu=N` (docs/capture.md).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use serde_json::json;

use crate::args::{CaptureArgs, VerdictArg};
use crate::backend::{CaptureSource, Captured as Rec};
use crate::kmod;
use crate::{engines, netns};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT/SIGTERM end the capture normally (disarmed, file complete).
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe);
        // no SA_RESTART, so a blocking poll returns with EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn verdict_name(bit: u32) -> &'static str {
    match bit {
        kmod::CAPTURE_DROP => "drop",
        kmod::CAPTURE_FAULT => "fault",
        _ => "pass",
    }
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A pcapng file being written: one interface description per link type.
struct Out {
    w: PcapNgWriter<BufWriter<File>>,
    /// Interface ids of Ethernet and raw IP, once described.
    ifaces: [Option<u32>; 2],
    next_if: u32,
    iface: String,
    snaplen: u32,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, to date records.
    wall_offset: u64,
    /// The filter's name, for every comment.
    name: String,
}

impl Out {
    fn create(path: &Path, iface: &str, snaplen: u32, name: String) -> Result<Out> {
        let f = File::create(path).with_context(|| path.display().to_string())?;
        let w = PcapNgWriter::new(BufWriter::new(f)).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let wall_offset = clock_ns(libc::CLOCK_REALTIME).saturating_sub(clock_ns(libc::CLOCK_MONOTONIC));
        Ok(Out { w, ifaces: [None; 2], next_if: 0, iface: iface.into(), snaplen, wall_offset, name })
    }

    fn write(&mut self, r: &Rec) -> Result<()> {
        let slot = if r.link == 1 { 0 } else { 1 };
        let if_id = match self.ifaces[slot] {
            Some(id) => id,
            None => {
                let idb = InterfaceDescriptionBlock {
                    linktype: if slot == 0 { DataLink::ETHERNET } else { DataLink::RAW },
                    snaplen: self.snaplen,
                    options: vec![
                        InterfaceDescriptionOption::IfName(self.iface.clone().into()),
                        InterfaceDescriptionOption::IfTsResol(9),
                    ],
                };
                self.w.write_pcapng_block(idb).map_err(|e| anyhow!("writing the capture: {e}"))?;
                let id = self.next_if;
                self.next_if += 1;
                self.ifaces[slot] = Some(id);
                id
            }
        };
        let mut comment =
            format!("wasmfw verdict={} filter={} name={} cpu={}", verdict_name(r.verdict), r.filter, self.name, r.cpu);
        if r.audit {
            comment.push_str(" mode=audit");
        }
        let epb = EnhancedPacketBlock {
            interface_id: if_id,
            timestamp: Duration::from_nanos(r.ts_mono_ns + self.wall_offset),
            original_len: r.orig_len,
            data: (&r.data[..]).into(),
            options: vec![EnhancedPacketOption::Comment(comment.into())],
        };
        self.w.write_pcapng_block(epb).map_err(|e| anyhow!("writing the capture: {e}"))?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.w.get_mut().flush().context("writing the capture")
    }
}

pub fn run(args: &CaptureArgs, json: bool) -> Result<()> {
    crate::access::check_privileges("capturing a filter's packets")?;
    if args.snaplen == 0 || args.snaplen > kmod::CAPTURE_SNAPLEN {
        anyhow::bail!("--snaplen must be 1..={}", kmod::CAPTURE_SNAPLEN);
    }
    let verdicts = args.verdict.iter().fold(0u32, |m, v| {
        m | match v {
            VerdictArg::Pass => kmod::CAPTURE_PASS,
            VerdictArg::Drop => kmod::CAPTURE_DROP,
            VerdictArg::Fault => kmod::CAPTURE_FAULT,
        }
    });
    let (engine, filter) = engines::attached(netns::current()?, &args.iface)?;
    let mut source = filter.capture(verdicts, args.snaplen)?;
    let (engine, name) = (engine.name(), filter.filter().to_string());
    catch_signals();
    let result = capture_loop(source.as_mut(), args, name);
    let stopped = source.stop();
    let (written, lost) = result?;
    stopped?;
    if json {
        println!(
            "{}",
            json!({"iface": args.iface, "engine": engine, "file": args.write, "packets": written, "lost": lost})
        );
    } else {
        println!("{written} packets written to {} ({lost} lost: ring full)", args.write.display());
    }
    Ok(())
}

fn capture_loop(source: &mut dyn CaptureSource, args: &CaptureArgs, name: String) -> Result<(u64, u64)> {
    let mut out = Out::create(&args.write, &args.iface, args.snaplen, name)?;
    out.flush()?;
    // On stderr in JSON mode too: scripts wait for it to know the capture is armed.
    eprintln!("capturing on {} into {} (Ctrl-C to stop)", args.iface, args.write.display());
    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let (mut written, mut lost) = (0u64, 0u64);
    let mut batch = Vec::new();
    while !STOP.load(Ordering::Relaxed)
        && args.count.is_none_or(|c| written < c)
        && deadline.is_none_or(|d| Instant::now() < d)
    {
        lost = source.poll(&mut batch)?;
        for r in batch.drain(..) {
            if args.count.is_some_and(|c| written >= c) {
                break;
            }
            out.write(&r)?;
            written += 1;
        }
        out.flush()?;
    }
    Ok((written, lost))
}
