//! `wasmfw capture --iface IF --verdict drop|pass|fault -w FILE.pcapng`:
//! the packets the filter attached on an interface gave those verdicts,
//! from either engine, into a pcapng file whose every packet carries a
//! comment `wasmfw verdict=drop filter=ID name=NAME cpu=N` (docs/capture.md).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use serde_json::json;

use crate::attachments::{attached_here, kmod_attached, Attached};
use crate::kmod::{self, Device, InfoText as _};
use crate::netns;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VerdictArg {
    Drop,
    Pass,
    /// The filter trapped or ran out of fuel (its on_fault verdict applied);
    /// Wasm engine only: the eBPF twins cannot fault.
    Fault,
}

#[derive(clap::Args, Debug)]
pub struct CaptureArgs {
    /// Interface whose attached filter to watch (this network namespace).
    #[arg(long)]
    pub iface: String,
    /// Verdicts to record (repeat or comma-separate for several).
    #[arg(long, value_enum, value_delimiter = ',', required = true)]
    pub verdict: Vec<VerdictArg>,
    /// The pcapng file to write.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: PathBuf,
    /// Stop after this many packets.
    #[arg(short = 'c', long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "S")]
    pub duration: Option<f64>,
    /// Bytes kept of each packet (at most 2048).
    #[arg(long, default_value_t = kmod::CAPTURE_SNAPLEN)]
    pub snaplen: u32,
}

/// How often the kernel engine's ring is read; the eBPF perf buffers are
/// waited on with this timeout.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

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

/// One captured packet, whichever engine recorded it.
struct Rec {
    ts_mono_ns: u64,
    cpu: u32,
    /// One CAPTURE_* bit.
    verdict: u32,
    /// The filter's id (the kernel engine's) or program id (eBPF).
    filter: u32,
    /// 1 Ethernet, 2 raw IP.
    link: u32,
    /// Audit mode passed this drop (kernel engine).
    audit: bool,
    orig_len: u32,
    data: Vec<u8>,
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

/// Where records come from.
enum Source {
    Wasm { dev: Device, id: u32 },
    Ebpf { cap: wasmfw_ebpf::capture::Capture, prog_id: u32 },
}

impl Source {
    /// New records into `out`; returns the records lost so far.
    fn poll(&mut self, out: &mut Vec<Rec>) -> Result<u64> {
        match self {
            Source::Wasm { dev, id } => {
                let (recs, lost) = dev.capture_read(*id)?;
                if recs.is_empty() {
                    std::thread::sleep(POLL_INTERVAL);
                }
                out.extend(recs.into_iter().map(|r| Rec {
                    ts_mono_ns: r.ts_ns,
                    cpu: r.cpu,
                    verdict: r.verdict,
                    filter: r.id,
                    link: r.link,
                    audit: r.audit,
                    orig_len: r.orig_len,
                    data: r.data,
                }));
                Ok(lost)
            }
            Source::Ebpf { cap, prog_id } => {
                let mut recs = Vec::new();
                cap.poll(POLL_INTERVAL, &mut recs)?;
                out.extend(recs.into_iter().map(|r| Rec {
                    ts_mono_ns: r.ts_ns,
                    cpu: r.cpu,
                    verdict: r.verdict,
                    filter: *prog_id,
                    link: 1,
                    audit: false,
                    orig_len: r.orig_len,
                    data: r.data,
                }));
                Ok(cap.lost)
            }
        }
    }

    /// Disarms the capture (the kernel engine's also ends when the device
    /// is closed, the eBPF twin's when the capture is dropped).
    fn stop(&mut self) -> Result<()> {
        match self {
            Source::Wasm { dev, id } => dev.capture_stop(*id),
            Source::Ebpf { cap, .. } => cap.stop(),
        }
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
    let ns = netns::current()?;
    let (mut source, engine, name) = match attached_here(ns, &args.iface)? {
        Attached::Wasm(id) => {
            let name = kmod_attached(ns, &args.iface)?.map(|i| i.name()).unwrap_or_default();
            let dev = Device::open()?;
            dev.capture_start(id, verdicts, args.snaplen)?;
            (Source::Wasm { dev, id }, "wasm", name)
        }
        Attached::Ebpf(prog_id) => {
            let name = crate::records::read(ns, &args.iface).map(|e| e.filter).unwrap_or_default();
            let cap = wasmfw_ebpf::capture::Capture::start(prog_id, verdicts, args.snaplen)?;
            (Source::Ebpf { cap, prog_id }, "ebpf", name)
        }
    };
    catch_signals();
    let result = capture_loop(&mut source, args, name);
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

fn capture_loop(source: &mut Source, args: &CaptureArgs, name: String) -> Result<(u64, u64)> {
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
