//! The kernel module's tests, inside guests booted from the project's own
//! kernel (kmod/guest/): User-Mode Linux and x86 under qemu (TCG).

use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::deps::{root, run};

/// Where `kmod/tests/run.sh` writes one line per guest test (its format in
/// run.sh's header); the only place the guest tests' verdicts are read.
const RESULTS: &str = "target/kmod-tests/results.txt";

/// Builds (or reuses) the kernels, the module, wasmfw and the filters, boots
/// the guests and runs `kmod/tests/` inside (run.sh prints the tally); the
/// step's verdict is the results file's.
pub fn test() -> Result<()> {
    let script = root().join("kmod/tests/run.sh");
    let status =
        Command::new("bash").arg(&script).status().with_context(|| format!("cannot run {}", script.display()))?;
    let text = std::fs::read_to_string(root().join(RESULTS))
        .with_context(|| format!("kmod/tests/run.sh ({status}) wrote no {RESULTS}"))?;
    let results = parse_results(&text)?;
    let failed: Vec<String> = results.iter().filter(|r| r.status == Status::Fail).map(GuestResult::describe).collect();
    if !failed.is_empty() {
        bail!("{} of {} guest tests failed ({RESULTS}): {}", failed.len(), results.len(), failed.join("; "));
    }
    if results.is_empty() {
        bail!("{RESULTS} lists no guest test (kmod/tests/run.sh: {status})");
    }
    if !status.success() {
        bail!("kmod/tests/run.sh failed ({status}) though {RESULTS} lists no failed test");
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Status {
    Pass,
    Fail,
    Skip,
}

/// One line of the results file: `<PASS|FAIL|SKIP> <guest>:<test> <secs|-> [reason]`.
#[derive(Debug, PartialEq)]
struct GuestResult {
    status: Status,
    name: String,
    secs: Option<f64>,
    reason: String,
}

impl GuestResult {
    /// `uml:stress (12.0 s: reason)`.
    fn describe(&self) -> String {
        let secs = self.secs.map(|s| format!("{s:.1} s"));
        let why = [secs.as_deref(), Some(self.reason.as_str()).filter(|r| !r.is_empty())];
        let why: Vec<&str> = why.into_iter().flatten().collect();
        if why.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, why.join(": "))
        }
    }
}

fn parse_results(text: &str) -> Result<Vec<GuestResult>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let (st, name, secs) = (f.next(), f.next(), f.next());
            let status = match st {
                Some("PASS") => Status::Pass,
                Some("FAIL") => Status::Fail,
                Some("SKIP") => Status::Skip,
                _ => bail!("{RESULTS}: not a result line: {l:?}"),
            };
            let (Some(name), Some(secs)) = (name, secs) else { bail!("{RESULTS}: not a result line: {l:?}") };
            let secs = if secs == "-" {
                None
            } else {
                Some(secs.parse().with_context(|| format!("{RESULTS}: seconds in {l:?}"))?)
            };
            Ok(GuestResult { status, name: name.to_string(), secs, reason: f.next().unwrap_or("").to_string() })
        })
        .collect()
}

/// Boots a guest and shows the ICMP interceptor dropping real ping.
pub fn demo() -> Result<()> {
    run(Command::new("bash").arg(root().join("kmod/tests/run.sh")).arg("--demo"))
}

/// The mechanism of `kmod/guest/patches/uml-xstate-runtime-size.patch`,
/// on this host's own XSAVE layout: a buffer smaller than the host's XSAVE
/// area is refused by PTRACE_SETREGSET (EFAULT, the AMX symptom), a
/// host-sized scratch buffer with the truncated components in init state
/// is accepted and keeps the registers UML holds (`kmod/guest/xstate-check.c`).
pub fn xstate_check() -> Result<()> {
    let out = root().join("target/xstate-check");
    std::fs::create_dir_all(root().join("target"))?;
    run(Command::new("gcc").arg("-O1").arg("-o").arg(&out).arg(root().join("kmod/guest/xstate-check.c")))?;
    run(&mut Command::new(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_file() {
        let r = parse_results(
            "PASS uml:icmp 9.1\nSKIP uml:kmemleak 0.2 kmemleak NOT checked: no kmemleak\n\
             FAIL x86:stress - not run: guest exit 124\nPASS uml:kernel-log-clean -\n",
        )
        .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0],
            GuestResult { status: Status::Pass, name: "uml:icmp".into(), secs: Some(9.1), reason: "".into() }
        );
        assert_eq!(r[1].status, Status::Skip);
        assert_eq!(r[1].reason, "kmemleak NOT checked: no kmemleak");
        assert_eq!(
            (r[2].status == Status::Fail, r[2].secs, r[2].reason.as_str()),
            (true, None, "not run: guest exit 124")
        );
        assert_eq!(r[2].describe(), "x86:stress (not run: guest exit 124)");
        assert_eq!(r[0].describe(), "uml:icmp (9.1 s)");
        assert!(parse_results("ok uml:icmp (9.1s)\n").is_err());
        assert!(parse_results("PASS uml:icmp\n").is_err());
    }
}
