//! The translation proper: one ABI-v1 filter -> one eBPF XDP program.
//!
//! Every Wasm value lives in an 8-byte slot of this CPU's auxiliary area
//! (after the linear memory, in the same array-map value): globals, the
//! fuel counter, then one frame per call depth holding the locals and the
//! operand stack, slot `h` for stack height `h`. i32 values are kept
//! zero-extended. Calls are inlined (no recursion), so every slot address
//! is a constant offset from `R_AUX`. Registers hold values only within
//! one Wasm instruction, which keeps the verifier's states small and equal
//! at join points (it prunes them) and its loops convergent (`may_goto`).

use anyhow::{anyhow, bail, Result};
use wasmfw_engine::{abi, MapKind, Verdict};
use wasmfw_xdp_bridge::sys::Insn;
use wasmparser::{BlockType, MemArg, Operator, ValType};

use crate::asm::*;
use crate::module::{Host, Module};
use crate::{BUILTIN_COUNTERS, FRAME_SLOTS, MAX_FRAMES, MAX_GLOBALS, MAX_INSNS, MAX_MEMORY, XDP_DROP, XDP_PASS};

/// bpf_map_lookup_elem, bpf_map_update_elem, bpf_map_delete_elem,
/// bpf_ktime_get_ns, bpf_get_smp_processor_id, bpf_xdp_get_buff_len,
/// bpf_xdp_load_bytes (include/uapi/linux/bpf.h, `___BPF_FUNC_MAPPER`).
const HELPER_MAP_LOOKUP: i32 = 1;
const HELPER_MAP_UPDATE: i32 = 2;
const HELPER_MAP_DELETE: i32 = 3;
const HELPER_KTIME_GET_NS: i32 = 5;
const HELPER_SMP_PROCESSOR_ID: i32 = 8;
const HELPER_XDP_GET_BUFF_LEN: i32 = 188;
const HELPER_XDP_LOAD_BYTES: i32 = 189;

/// A filter map as the program sees it.
#[derive(Clone, Copy, Debug)]
pub struct MapRef {
    pub kind: MapKind,
    pub key_size: usize,
    pub value_size: usize,
    pub fd: i32,
}

/// Everything the program is specialised on: the state after
/// `wasmfw_init`, the policy's limits and the BPF maps' fds.
pub struct Target {
    pub mem_size: usize,
    /// Address and size of the I/O buffer.
    pub buffer: (usize, usize),
    /// Exported mutable globals after init, by name.
    pub globals: Vec<(String, i64)>,
    pub maps: Vec<MapRef>,
    /// Number of the filter's own counters.
    pub counters: usize,
    pub fuel: u64,
    pub on_fault: Verdict,
    pub audit: bool,
    /// The linear-memory array (one entry per CPU) and the counters.
    pub mem_fd: i32,
    pub counters_fd: i32,
}

/// Bytes of one call depth's frame.
const FRAME_BYTES: usize = FRAME_SLOTS * 8;

/// Size of the auxiliary area for `globals` globals.
pub fn aux_size(globals: usize) -> usize {
    frames_off(globals) + MAX_FRAMES * FRAME_BYTES
}

fn frames_off(globals: usize) -> usize {
    8 * (globals + 1)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Func,
    Block,
    Loop,
    If,
}

struct Ctl {
    kind: Kind,
    height: usize,
    arity: usize,
    /// The end (block, if, function) or the head (loop).
    label: Label,
    else_label: Option<Label>,
    unreachable: bool,
}

struct Tx<'m, 'a> {
    m: &'m Module<'a>,
    t: &'m Target,
    asm: Asm,
    trap: Label,
    fuel: Label,
    /// Functions being inlined, outermost first: a call to one of them is
    /// recursion, which static frames cannot hold.
    inlining: Vec<u32>,
}

/// Translates the filter's `wasmfw_filter` and everything it calls.
pub fn translate(m: &Module<'_>, t: &Target) -> Result<Vec<Insn>> {
    if t.mem_size > MAX_MEMORY {
        bail!("linear memory of {} bytes is more than the compiled tier's {MAX_MEMORY}", t.mem_size);
    }
    if m.globals.len() > MAX_GLOBALS {
        bail!("{} globals, more than the compiled tier's {MAX_GLOBALS}", m.globals.len());
    }
    for (i, g) in m.globals.iter().enumerate() {
        if g.mutable && g.export.is_none() {
            bail!("mutable global {i} is not exported: its value after init is unknown");
        }
    }
    let filter = m.export(abi::EXPORT_FILTER).ok_or_else(|| anyhow!("missing export {}", abi::EXPORT_FILTER))?;
    let mut asm = Asm::default();
    let trap = asm.label();
    let fuel = asm.label();
    let mut tx = Tx { m, t, asm, trap, fuel, inlining: Vec::new() };
    tx.prologue()?;
    // Frame 0 holds the verdict; the filter runs in frame 1, its
    // arguments (packet_len, LINK_ETHERNET) in locals 0 and 1.
    let result = tx.frame_off(0, 0)?;
    tx.asm.alu_k(ALU64, MOV, R1, abi::LINK_ETHERNET);
    tx.asm.stx(SZ_DW, R_AUX, tx.frame_off(1, 1)?, R1);
    tx.inline(filter, 1, Some(result))?;
    tx.epilogue(result)?;
    if tx.asm.len() > MAX_INSNS {
        bail!("translation has {} eBPF instructions, more than {MAX_INSNS}", tx.asm.len());
    }
    tx.asm.finish()
}

fn i16_off(off: usize) -> Result<i16> {
    i16::try_from(off).map_err(|_| anyhow!("slot offset {off} beyond eBPF's 16-bit offsets"))
}

impl Tx<'_, '_> {
    /// Offset from `R_AUX` of slot `slot` of the frame at call depth `depth`.
    fn frame_off(&self, depth: usize, slot: usize) -> Result<i16> {
        if depth >= MAX_FRAMES || slot >= FRAME_SLOTS {
            bail!("needs more than {MAX_FRAMES} frames of {FRAME_SLOTS} slots (locals + operand stack)");
        }
        i16_off(frames_off(self.m.globals.len()) + depth * FRAME_BYTES + slot * 8)
    }

    fn fuel_off(&self) -> i16 {
        (8 * self.m.globals.len()) as i16
    }

    /// Finds this CPU's memory and counters, counts the packet, refuels and
    /// copies the frame into the I/O buffer.
    fn prologue(&mut self) -> Result<()> {
        let a = &mut self.asm;
        let out = a.label();
        a.mov64(R_CTX, R1);
        a.call(HELPER_SMP_PROCESSOR_ID);
        a.stx(SZ_W, R_FP, -4, R0);
        a.map_fd(R1, self.t.mem_fd);
        a.mov64(R2, R_FP);
        a.alu_k(ALU64, ADD, R2, -4);
        a.call(HELPER_MAP_LOOKUP);
        a.jmp_k(JMP, JEQ, R0, 0, out);
        a.mov64(R_MEM, R0);
        a.mov64(R_AUX, R0);
        a.alu_k(ALU64, ADD, R_AUX, self.t.mem_size as i32);
        a.alu_k(ALU64, MOV, R1, 0);
        a.stx(SZ_W, R_FP, -4, R1);
        a.map_fd(R1, self.t.counters_fd);
        a.mov64(R2, R_FP);
        a.alu_k(ALU64, ADD, R2, -4);
        a.call(HELPER_MAP_LOOKUP);
        a.jmp_k(JMP, JEQ, R0, 0, out);
        a.mov64(R_CNT, R0);
        self.count(0);
        let fuel = i64::try_from(self.t.fuel).unwrap_or(i64::MAX);
        self.asm.imm64(R1, fuel);
        self.asm.stx(SZ_DW, R_AUX, self.fuel_off(), R1);
        // n = min(frame length, buffer length): the filter's packet_len.
        let (buf, buf_len) = self.t.buffer;
        let keep = self.frame_off(1, 0)?;
        let a = &mut self.asm;
        a.mov64(R1, R_CTX);
        a.call(HELPER_XDP_GET_BUFF_LEN);
        let short = a.label();
        a.jmp_k(JMP, JLE, R0, buf_len as i32, short);
        a.alu_k(ALU64, MOV, R0, buf_len as i32);
        a.bind(short);
        a.stx(SZ_DW, R_AUX, keep, R0);
        let empty = a.label();
        a.jmp_k(JMP, JEQ, R0, 0, empty);
        a.mov64(R4, R0);
        a.mov64(R1, R_CTX);
        a.alu_k(ALU64, MOV, R2, 0);
        a.mov64(R3, R_MEM);
        a.alu_k(ALU64, ADD, R3, buf as i32);
        a.call(HELPER_XDP_LOAD_BYTES);
        a.bind(empty);
        let body = a.label();
        a.ja(body);
        a.bind(out);
        a.alu_k(ALU64, MOV, R0, XDP_PASS);
        a.exit();
        a.bind(body);
        Ok(())
    }

    /// Adds one to a built-in counter.
    fn count(&mut self, index: usize) {
        let a = &mut self.asm;
        a.ldx(SZ_DW, R1, R_CNT, (index * 8) as i16);
        a.alu_k(ALU64, ADD, R1, 1);
        a.stx(SZ_DW, R_CNT, (index * 8) as i16, R1);
    }

    /// The verdict: the filter's, or `on_fault`'s after a trap or fuel
    /// out, counted as the engine counts it.
    fn epilogue(&mut self, result: i16) -> Result<()> {
        let (pass, drop, fault) = (self.asm.label(), self.asm.label(), self.asm.label());
        let a = &mut self.asm;
        a.ldx(SZ_DW, R1, R_AUX, result);
        a.jmp_k(JMP32, JEQ, R1, Verdict::Pass.abi(), pass);
        a.jmp_k(JMP32, JEQ, R1, Verdict::Drop.abi(), drop);
        a.ja(self.trap);
        let trap = self.trap;
        self.asm.bind(trap);
        self.count(3);
        self.asm.ja(fault);
        let fuel = self.fuel;
        self.asm.bind(fuel);
        self.count(4);
        self.asm.bind(fault);
        // A trap unwinds without the filter's epilogues: reset the
        // exported mutable globals (the shadow stack pointer) as hosts do.
        for (i, g) in self.m.globals.iter().enumerate() {
            if let Some(name) = &g.export {
                if g.mutable {
                    let v = self.t.globals.iter().find(|(n, _)| n == name).map_or(g.init, |e| e.1);
                    let v = if g.ty == ValType::I32 { i64::from(v as u32) } else { v };
                    self.asm.imm64(R1, v);
                    self.asm.stx(SZ_DW, R_AUX, (8 * i) as i16, R1);
                }
            }
        }
        self.asm.ja(if self.t.on_fault == Verdict::Drop { drop } else { pass });
        self.asm.bind(pass);
        self.count(1);
        self.asm.alu_k(ALU64, MOV, R0, XDP_PASS);
        self.asm.exit();
        self.asm.bind(drop);
        self.count(2);
        if self.t.audit {
            self.count(5);
            self.asm.alu_k(ALU64, MOV, R0, XDP_PASS);
        } else {
            self.asm.alu_k(ALU64, MOV, R0, XDP_DROP);
        }
        self.asm.exit();
        Ok(())
    }

    /// Charges `cost` fuel; out of fuel jumps to the fuel fault.
    fn charge(&mut self, cost: usize) {
        let off = self.fuel_off();
        let a = &mut self.asm;
        a.ldx(SZ_DW, R1, R_AUX, off);
        a.alu_k(ALU64, SUB, R1, cost as i32);
        a.jmp_k(JMP, JSLT, R1, 0, self.fuel);
        a.stx(SZ_DW, R_AUX, off, R1);
    }

    /// Inlines function `func` at call depth `depth`; its parameters are
    /// already in its frame's first slots. Its result goes to `result`.
    fn inline(&mut self, func: u32, depth: usize, result: Option<i16>) -> Result<()> {
        let m = self.m;
        let Some(index) = (func as usize).checked_sub(m.imports.len()) else {
            bail!("internal: function {func} is an import")
        };
        if self.inlining.contains(&func) {
            bail!("function {func} is recursive: the compiled tier inlines calls");
        }
        let body = m.bodies.get(index).ok_or_else(|| anyhow!("function {func} has no body"))?;
        let sig = m.sig(func)?;
        let nparams = sig.params.len();
        let nlocals = nparams + body.locals.len();
        // Wasm locals start at zero.
        for l in nparams..nlocals {
            self.asm.alu_k(ALU64, MOV, R1, 0);
            let off = self.frame_off(depth, l)?;
            self.asm.stx(SZ_DW, R_AUX, off, R1);
        }
        self.inlining.push(func);
        let end = self.asm.label();
        let mut f = Func { depth, nlocals, h: 0, ctl: Vec::new(), skip: 0 };
        f.ctl.push(Ctl {
            kind: Kind::Func,
            height: 0,
            arity: sig.results.len(),
            label: end,
            else_label: None,
            unreachable: false,
        });
        self.charge(block_cost(&body.ops, 0));
        for (i, (op, offset)) in body.ops.iter().enumerate() {
            if f.ctl.is_empty() {
                bail!("code after the end of function {func} at offset {offset:#x}");
            }
            self.op(&mut f, op, &body.ops, i).map_err(|e| anyhow!("{op:?} at offset {offset:#x}: {e}"))?;
        }
        self.inlining.pop();
        if let Some(result) = result {
            if sig.results.len() == 1 {
                let from = self.frame_off(depth, nlocals)?;
                self.asm.ldx(SZ_DW, R1, R_AUX, from);
                self.asm.stx(SZ_DW, R_AUX, result, R1);
            }
        }
        Ok(())
    }
}

/// Fuel for the straight-line code from `ops[from]`: one per instruction
/// up to the next control instruction (wasmi charges about one per
/// instruction, docs/filter-abi.md).
fn block_cost(ops: &[(Operator<'_>, usize)], from: usize) -> usize {
    let n = ops[from..]
        .iter()
        .take_while(|(op, _)| {
            !matches!(
                op,
                Operator::Block { .. }
                    | Operator::Loop { .. }
                    | Operator::If { .. }
                    | Operator::Else
                    | Operator::End
                    | Operator::Br { .. }
                    | Operator::BrIf { .. }
                    | Operator::BrTable { .. }
                    | Operator::Return
            )
        })
        .count();
    n + 1
}

/// A function being translated.
struct Func {
    depth: usize,
    nlocals: usize,
    /// Operand stack height.
    h: usize,
    ctl: Vec<Ctl>,
    /// Nesting depth inside unreachable code being skipped.
    skip: usize,
}

#[derive(Clone, Copy)]
enum W {
    I32,
    I64,
}

impl W {
    fn alu(self) -> u8 {
        match self {
            W::I32 => ALU,
            W::I64 => ALU64,
        }
    }
    fn jmp(self) -> u8 {
        match self {
            W::I32 => JMP32,
            W::I64 => JMP,
        }
    }
    fn bits(self) -> i32 {
        match self {
            W::I32 => 32,
            W::I64 => 64,
        }
    }
}

fn arity(bt: BlockType) -> Result<usize> {
    match bt {
        BlockType::Empty => Ok(0),
        BlockType::Type(_) => Ok(1),
        BlockType::FuncType(_) => bail!("multi-value blocks are not supported"),
    }
}

impl Tx<'_, '_> {
    fn slot(&self, f: &Func, h: usize) -> Result<i16> {
        self.frame_off(f.depth, f.nlocals + h)
    }

    fn local(&self, f: &Func, i: u32) -> Result<i16> {
        if i as usize >= f.nlocals {
            bail!("no local {i}");
        }
        self.frame_off(f.depth, i as usize)
    }

    fn ld(&mut self, reg: u8, off: i16) {
        self.asm.ldx(SZ_DW, reg, R_AUX, off);
    }

    fn st(&mut self, off: i16, reg: u8) {
        self.asm.stx(SZ_DW, R_AUX, off, reg);
    }

    /// The two top operands in R1, R2; the result slot's offset.
    fn pop2(&mut self, f: &mut Func) -> Result<i16> {
        if f.h < 2 {
            bail!("operand stack underflow");
        }
        let (a, b) = (self.slot(f, f.h - 2)?, self.slot(f, f.h - 1)?);
        self.ld(R1, a);
        self.ld(R2, b);
        f.h -= 1;
        Ok(a)
    }

    /// The top operand in R1; its slot's offset (where the result goes).
    fn top(&mut self, f: &Func) -> Result<i16> {
        if f.h < 1 {
            bail!("operand stack underflow");
        }
        let a = self.slot(f, f.h - 1)?;
        self.ld(R1, a);
        Ok(a)
    }

    fn push(&mut self, f: &mut Func, reg: u8) -> Result<()> {
        let off = self.slot(f, f.h)?;
        self.st(off, reg);
        f.h += 1;
        Ok(())
    }

    fn binop(&mut self, f: &mut Func, w: W, op: u8) -> Result<()> {
        let a = self.pop2(f)?;
        self.asm.alu_x(w.alu(), op, R1, R2);
        self.st(a, R1);
        Ok(())
    }

    fn shift(&mut self, f: &mut Func, w: W, op: u8) -> Result<()> {
        let a = self.pop2(f)?;
        self.asm.alu_k(w.alu(), AND, R2, w.bits() - 1);
        self.asm.alu_x(w.alu(), op, R1, R2);
        self.st(a, R1);
        Ok(())
    }

    fn rotate(&mut self, f: &mut Func, w: W, left: bool) -> Result<()> {
        let a = self.pop2(f)?;
        let (first, second) = if left { (LSH, RSH) } else { (RSH, LSH) };
        let c = w.alu();
        self.asm.alu_k(c, AND, R2, w.bits() - 1);
        self.asm.mov64(R3, R1);
        self.asm.alu_x(c, first, R1, R2);
        self.asm.alu_k(c, MOV, R4, w.bits());
        self.asm.alu_x(c, SUB, R4, R2);
        self.asm.alu_k(c, AND, R4, w.bits() - 1);
        self.asm.alu_x(c, second, R3, R4);
        self.asm.alu_x(c, OR, R1, R3);
        self.st(a, R1);
        Ok(())
    }

    /// Division and remainder, trapping as Wasm does (zero divisor, and
    /// the signed quotient MIN / -1).
    fn divide(&mut self, f: &mut Func, w: W, op: u8, signed: bool) -> Result<()> {
        let a = self.pop2(f)?;
        let (c, j) = (w.alu(), w.jmp());
        self.asm.jmp_k(j, JEQ, R2, 0, self.trap);
        if !signed {
            self.asm.alu_x(c, op, R1, R2);
        } else {
            let (normal, done) = (self.asm.label(), self.asm.label());
            self.asm.jmp_k(j, JNE, R2, -1, normal);
            if op == DIV {
                match w {
                    W::I32 => self.asm.jmp_k(JMP32, JEQ, R1, i32::MIN, self.trap),
                    W::I64 => {
                        self.asm.imm64(R3, i64::MIN);
                        self.asm.jmp_x(JMP, JEQ, R1, R3, self.trap);
                    }
                }
                self.asm.alu_k(c, NEG, R1, 0);
            } else {
                self.asm.alu_k(c, MOV, R1, 0);
            }
            self.asm.ja(done);
            self.asm.bind(normal);
            self.asm.alu_x_signed(c, op, R1, R2);
            self.asm.bind(done);
        }
        self.st(a, R1);
        Ok(())
    }

    fn compare(&mut self, f: &mut Func, w: W, op: u8) -> Result<()> {
        let a = self.pop2(f)?;
        let yes = self.asm.label();
        self.asm.alu_k(ALU64, MOV, R0, 1);
        self.asm.jmp_x(w.jmp(), op, R1, R2, yes);
        self.asm.alu_k(ALU64, MOV, R0, 0);
        self.asm.bind(yes);
        self.st(a, R0);
        Ok(())
    }

    fn eqz(&mut self, f: &mut Func, w: W) -> Result<()> {
        let a = self.top(f)?;
        let yes = self.asm.label();
        self.asm.alu_k(ALU64, MOV, R0, 1);
        self.asm.jmp_k(w.jmp(), JEQ, R1, 0, yes);
        self.asm.alu_k(ALU64, MOV, R0, 0);
        self.asm.bind(yes);
        self.st(a, R0);
        Ok(())
    }

    /// Sign-extends the low `bits` of R1 to the width `w`.
    fn sign_extend(&mut self, w: W, bits: i32) {
        self.asm.alu_k(w.alu(), LSH, R1, w.bits() - bits);
        self.asm.alu_k(w.alu(), ARSH, R1, w.bits() - bits);
    }

    fn unary(&mut self, f: &Func, body: impl FnOnce(&mut Self)) -> Result<()> {
        let a = self.top(f)?;
        body(self);
        self.st(a, R1);
        Ok(())
    }

    /// R1 = number of leading zeros of the 64-bit R1 (64 for 0).
    fn clz64(&mut self) {
        let (zero, done) = (self.asm.label(), self.asm.label());
        self.asm.jmp_k(JMP, JEQ, R1, 0, zero);
        self.asm.alu_k(ALU64, MOV, R2, 0);
        for bits in [32, 16, 8, 4, 2, 1] {
            let skip = self.asm.label();
            self.asm.mov64(R3, R1);
            self.asm.alu_k(ALU64, RSH, R3, 64 - bits);
            self.asm.jmp_k(JMP, JNE, R3, 0, skip);
            self.asm.alu_k(ALU64, ADD, R2, bits);
            self.asm.alu_k(ALU64, LSH, R1, bits);
            self.asm.bind(skip);
        }
        self.asm.mov64(R1, R2);
        self.asm.ja(done);
        self.asm.bind(zero);
        self.asm.alu_k(ALU64, MOV, R1, 64);
        self.asm.bind(done);
    }

    /// R1 = number of trailing zeros of the 64-bit R1 (64 for 0).
    fn ctz64(&mut self) {
        let (zero, done) = (self.asm.label(), self.asm.label());
        self.asm.jmp_k(JMP, JEQ, R1, 0, zero);
        // The lowest set bit alone, then 63 - its leading zeros.
        self.asm.mov64(R2, R1);
        self.asm.alu_k(ALU64, NEG, R2, 0);
        self.asm.alu_x(ALU64, AND, R1, R2);
        self.clz64();
        self.asm.alu_k(ALU64, MOV, R2, 63);
        self.asm.alu_x(ALU64, SUB, R2, R1);
        self.asm.mov64(R1, R2);
        self.asm.ja(done);
        self.asm.bind(zero);
        self.asm.alu_k(ALU64, MOV, R1, 64);
        self.asm.bind(done);
    }

    /// R1 = number of set bits of the 64-bit R1.
    fn popcnt64(&mut self) {
        let a = &mut self.asm;
        // x - ((x >> 1) & 0x55..), then 2-, 4-bit sums, then a multiply.
        a.mov64(R2, R1);
        a.alu_k(ALU64, RSH, R2, 1);
        a.imm64(R3, 0x5555_5555_5555_5555);
        a.alu_x(ALU64, AND, R2, R3);
        a.alu_x(ALU64, SUB, R1, R2);
        a.imm64(R3, 0x3333_3333_3333_3333);
        a.mov64(R2, R1);
        a.alu_x(ALU64, AND, R2, R3);
        a.alu_k(ALU64, RSH, R1, 2);
        a.alu_x(ALU64, AND, R1, R3);
        a.alu_x(ALU64, ADD, R1, R2);
        a.mov64(R2, R1);
        a.alu_k(ALU64, RSH, R2, 4);
        a.alu_x(ALU64, ADD, R1, R2);
        a.imm64(R3, 0x0f0f_0f0f_0f0f_0f0f);
        a.alu_x(ALU64, AND, R1, R3);
        a.imm64(R3, 0x0101_0101_0101_0101);
        a.alu_x(ALU64, MUL, R1, R3);
        a.alu_k(ALU64, RSH, R1, 56);
    }

    /// R2 = R_MEM + effective address of a `size`-byte access whose base
    /// address is in R2; out of bounds traps.
    fn address(&mut self, mem: &MemArg, size: usize) -> Result<()> {
        let limit = self.t.mem_size as u64;
        if mem.memory != 0 {
            bail!("memory {} (only memory 0 exists)", mem.memory);
        }
        if mem.offset + size as u64 > limit {
            self.asm.ja(self.trap);
            return Ok(());
        }
        if mem.offset != 0 {
            self.asm.alu_k(ALU64, ADD, R2, mem.offset as i32);
        }
        self.asm.jmp_k(JMP, JGT, R2, (limit - size as u64) as i32, self.trap);
        self.asm.alu_x(ALU64, ADD, R2, R_MEM);
        Ok(())
    }

    fn load(&mut self, f: &Func, mem: &MemArg, size: u8, bytes: usize, sext: Option<(W, i32)>) -> Result<()> {
        let a = self.slot_top(f)?;
        self.ld(R2, a);
        self.address(mem, bytes)?;
        self.asm.ldx(size, R1, R2, 0);
        if let Some((w, bits)) = sext {
            self.sign_extend(w, bits);
        }
        self.st(a, R1);
        Ok(())
    }

    fn store(&mut self, f: &mut Func, mem: &MemArg, size: u8, bytes: usize) -> Result<()> {
        if f.h < 2 {
            bail!("operand stack underflow");
        }
        let (addr, value) = (self.slot(f, f.h - 2)?, self.slot(f, f.h - 1)?);
        f.h -= 2;
        self.ld(R2, addr);
        self.address(mem, bytes)?;
        self.ld(R1, value);
        self.asm.stx(size, R2, 0, R1);
        Ok(())
    }

    fn slot_top(&self, f: &Func) -> Result<i16> {
        if f.h < 1 {
            bail!("operand stack underflow");
        }
        self.slot(f, f.h - 1)
    }

    /// Jumps to the target of `br depth`, moving the branch's value.
    fn branch(&mut self, f: &Func, depth: u32) -> Result<()> {
        let Some(target) = f.ctl.len().checked_sub(1 + depth as usize).map(|i| &f.ctl[i]) else {
            bail!("branch depth {depth} out of range");
        };
        let (kind, height, arity, label) = (target.kind, target.height, target.arity, target.label);
        if kind != Kind::Loop && arity == 1 && f.h - 1 != height {
            let (from, to) = (self.slot(f, f.h - 1)?, self.slot(f, height)?);
            self.ld(R1, from);
            self.st(to, R1);
        }
        self.asm.ja(label);
        Ok(())
    }

    fn unreachable_now(f: &mut Func) {
        if let Some(c) = f.ctl.last_mut() {
            c.unreachable = true;
        }
    }

    fn op(&mut self, f: &mut Func, op: &Operator<'_>, ops: &[(Operator<'_>, usize)], i: usize) -> Result<()> {
        use Operator as O;
        if f.ctl.last().is_some_and(|c| c.unreachable) {
            match op {
                O::Block { .. } | O::Loop { .. } | O::If { .. } => {
                    f.skip += 1;
                    return Ok(());
                }
                O::End | O::Else if f.skip > 0 => {
                    if matches!(op, O::End) {
                        f.skip -= 1;
                    }
                    return Ok(());
                }
                O::End | O::Else => {}
                _ => return Ok(()),
            }
        }
        match *op {
            O::Unreachable => {
                self.asm.ja(self.trap);
                Self::unreachable_now(f);
            }
            O::Nop => {}
            O::Block { blockty } => {
                let label = self.asm.label();
                let arity = arity(blockty)?;
                f.ctl.push(Ctl { kind: Kind::Block, height: f.h, arity, label, else_label: None, unreachable: false });
            }
            O::Loop { blockty } => {
                let label = self.asm.label();
                self.asm.bind(label);
                self.asm.may_goto(self.fuel);
                self.charge(block_cost(ops, i + 1));
                let arity = arity(blockty)?;
                f.ctl.push(Ctl { kind: Kind::Loop, height: f.h, arity, label, else_label: None, unreachable: false });
            }
            O::If { blockty } => {
                let c = self.slot_top(f)?;
                f.h -= 1;
                self.ld(R1, c);
                let (label, else_label) = (self.asm.label(), self.asm.label());
                self.asm.jmp_k(JMP32, JEQ, R1, 0, else_label);
                let arity = arity(blockty)?;
                f.ctl.push(Ctl {
                    kind: Kind::If,
                    height: f.h,
                    arity,
                    label,
                    else_label: Some(else_label),
                    unreachable: false,
                });
            }
            O::Else => {
                let c = f.ctl.last_mut().ok_or_else(|| anyhow!("else outside if"))?;
                let Some(else_label) = c.else_label.take() else { bail!("else without if") };
                let (end, reachable, height) = (c.label, !c.unreachable, c.height);
                c.unreachable = false;
                if reachable {
                    self.asm.ja(end);
                }
                self.asm.bind(else_label);
                f.h = height;
            }
            O::End => {
                let c = f.ctl.pop().ok_or_else(|| anyhow!("end without block"))?;
                if let Some(l) = c.else_label {
                    self.asm.bind(l);
                }
                if c.kind != Kind::Loop {
                    self.asm.bind(c.label);
                }
                f.h = c.height + c.arity;
            }
            O::Br { relative_depth } => {
                self.branch(f, relative_depth)?;
                Self::unreachable_now(f);
            }
            O::BrIf { relative_depth } => {
                let c = self.slot_top(f)?;
                f.h -= 1;
                self.ld(R1, c);
                let skip = self.asm.label();
                self.asm.jmp_k(JMP32, JEQ, R1, 0, skip);
                self.branch(f, relative_depth)?;
                self.asm.bind(skip);
            }
            O::BrTable { ref targets } => {
                let c = self.slot_top(f)?;
                f.h -= 1;
                for (n, depth) in targets.targets().enumerate() {
                    let next = self.asm.label();
                    self.ld(R1, c);
                    self.asm.jmp_k(JMP32, JNE, R1, n as i32, next);
                    self.branch(f, depth?)?;
                    self.asm.bind(next);
                }
                self.branch(f, targets.default())?;
                Self::unreachable_now(f);
            }
            O::Return => {
                self.branch(f, (f.ctl.len() - 1) as u32)?;
                Self::unreachable_now(f);
            }
            O::Call { function_index } => self.call(f, function_index)?,
            O::Drop => {
                self.slot_top(f)?;
                f.h -= 1;
            }
            O::Select | O::TypedSelect { .. } => {
                if f.h < 3 {
                    bail!("operand stack underflow");
                }
                let (a, b, c) = (self.slot(f, f.h - 3)?, self.slot(f, f.h - 2)?, self.slot(f, f.h - 1)?);
                f.h -= 2;
                let keep = self.asm.label();
                self.ld(R1, c);
                self.asm.jmp_k(JMP32, JNE, R1, 0, keep);
                self.ld(R2, b);
                self.st(a, R2);
                self.asm.bind(keep);
            }
            O::LocalGet { local_index } => {
                let l = self.local(f, local_index)?;
                self.ld(R1, l);
                self.push(f, R1)?;
            }
            O::LocalSet { local_index } => {
                let l = self.local(f, local_index)?;
                let c = self.slot_top(f)?;
                f.h -= 1;
                self.ld(R1, c);
                self.st(l, R1);
            }
            O::LocalTee { local_index } => {
                let l = self.local(f, local_index)?;
                let c = self.slot_top(f)?;
                self.ld(R1, c);
                self.st(l, R1);
            }
            O::GlobalGet { global_index } => {
                let g = self.m.globals.get(global_index as usize).ok_or_else(|| anyhow!("no such global"))?;
                if g.mutable {
                    self.ld(R1, (8 * global_index) as i16);
                } else {
                    let v = if g.ty == ValType::I32 { i64::from(g.init as u32) } else { g.init };
                    self.asm.imm64(R1, v);
                }
                self.push(f, R1)?;
            }
            O::GlobalSet { global_index } => {
                let g = self.m.globals.get(global_index as usize).ok_or_else(|| anyhow!("no such global"))?;
                if !g.mutable {
                    bail!("global {global_index} is immutable");
                }
                let c = self.slot_top(f)?;
                f.h -= 1;
                self.ld(R1, c);
                self.st((8 * global_index) as i16, R1);
            }
            O::I32Load { memarg } => self.load(f, &memarg, SZ_W, 4, None)?,
            O::I64Load { memarg } => self.load(f, &memarg, SZ_DW, 8, None)?,
            O::I32Load8S { memarg } => self.load(f, &memarg, SZ_B, 1, Some((W::I32, 8)))?,
            O::I32Load8U { memarg } | O::I64Load8U { memarg } => self.load(f, &memarg, SZ_B, 1, None)?,
            O::I32Load16S { memarg } => self.load(f, &memarg, SZ_H, 2, Some((W::I32, 16)))?,
            O::I32Load16U { memarg } | O::I64Load16U { memarg } => self.load(f, &memarg, SZ_H, 2, None)?,
            O::I64Load8S { memarg } => self.load(f, &memarg, SZ_B, 1, Some((W::I64, 8)))?,
            O::I64Load16S { memarg } => self.load(f, &memarg, SZ_H, 2, Some((W::I64, 16)))?,
            O::I64Load32S { memarg } => self.load(f, &memarg, SZ_W, 4, Some((W::I64, 32)))?,
            O::I64Load32U { memarg } => self.load(f, &memarg, SZ_W, 4, None)?,
            O::I32Store { memarg } | O::I64Store32 { memarg } => self.store(f, &memarg, SZ_W, 4)?,
            O::I64Store { memarg } => self.store(f, &memarg, SZ_DW, 8)?,
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => self.store(f, &memarg, SZ_B, 1)?,
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => self.store(f, &memarg, SZ_H, 2)?,
            O::MemorySize { mem: 0 } => {
                self.asm.alu_k(ALU64, MOV, R1, (self.t.mem_size / 65_536) as i32);
                self.push(f, R1)?;
            }
            O::MemoryGrow { mem: 0 } => {
                // Memory is final after init: grow fails on a packet.
                let c = self.slot_top(f)?;
                self.asm.alu_k(ALU, MOV, R1, -1);
                self.st(c, R1);
            }
            O::I32Const { value } => {
                self.asm.alu_k(ALU, MOV, R1, value);
                self.push(f, R1)?;
            }
            O::I64Const { value } => {
                self.asm.imm64(R1, value);
                self.push(f, R1)?;
            }
            O::I32Eqz => self.eqz(f, W::I32)?,
            O::I64Eqz => self.eqz(f, W::I64)?,
            O::I32Eq => self.compare(f, W::I32, JEQ)?,
            O::I32Ne => self.compare(f, W::I32, JNE)?,
            O::I32LtS => self.compare(f, W::I32, JSLT)?,
            O::I32LtU => self.compare(f, W::I32, JLT)?,
            O::I32GtS => self.compare(f, W::I32, JSGT)?,
            O::I32GtU => self.compare(f, W::I32, JGT)?,
            O::I32LeS => self.compare(f, W::I32, JSLE)?,
            O::I32LeU => self.compare(f, W::I32, JLE)?,
            O::I32GeS => self.compare(f, W::I32, JSGE)?,
            O::I32GeU => self.compare(f, W::I32, JGE)?,
            O::I64Eq => self.compare(f, W::I64, JEQ)?,
            O::I64Ne => self.compare(f, W::I64, JNE)?,
            O::I64LtS => self.compare(f, W::I64, JSLT)?,
            O::I64LtU => self.compare(f, W::I64, JLT)?,
            O::I64GtS => self.compare(f, W::I64, JSGT)?,
            O::I64GtU => self.compare(f, W::I64, JGT)?,
            O::I64LeS => self.compare(f, W::I64, JSLE)?,
            O::I64LeU => self.compare(f, W::I64, JLE)?,
            O::I64GeS => self.compare(f, W::I64, JSGE)?,
            O::I64GeU => self.compare(f, W::I64, JGE)?,
            O::I32Clz => self.unary(f, |s| {
                s.clz64();
                s.asm.alu_k(ALU64, SUB, R1, 32);
            })?,
            O::I64Clz => self.unary(f, |s| s.clz64())?,
            O::I32Ctz => self.unary(f, |s| {
                // Bit 32 set: a zero input gives 32.
                s.asm.imm64(R2, 1 << 32);
                s.asm.alu_x(ALU64, OR, R1, R2);
                s.ctz64();
            })?,
            O::I64Ctz => self.unary(f, |s| s.ctz64())?,
            O::I32Popcnt | O::I64Popcnt => self.unary(f, |s| s.popcnt64())?,
            O::I32Add => self.binop(f, W::I32, ADD)?,
            O::I32Sub => self.binop(f, W::I32, SUB)?,
            O::I32Mul => self.binop(f, W::I32, MUL)?,
            O::I32DivS => self.divide(f, W::I32, DIV, true)?,
            O::I32DivU => self.divide(f, W::I32, DIV, false)?,
            O::I32RemS => self.divide(f, W::I32, MOD, true)?,
            O::I32RemU => self.divide(f, W::I32, MOD, false)?,
            O::I32And => self.binop(f, W::I32, AND)?,
            O::I32Or => self.binop(f, W::I32, OR)?,
            O::I32Xor => self.binop(f, W::I32, XOR)?,
            O::I32Shl => self.shift(f, W::I32, LSH)?,
            O::I32ShrS => self.shift(f, W::I32, ARSH)?,
            O::I32ShrU => self.shift(f, W::I32, RSH)?,
            O::I32Rotl => self.rotate(f, W::I32, true)?,
            O::I32Rotr => self.rotate(f, W::I32, false)?,
            O::I64Add => self.binop(f, W::I64, ADD)?,
            O::I64Sub => self.binop(f, W::I64, SUB)?,
            O::I64Mul => self.binop(f, W::I64, MUL)?,
            O::I64DivS => self.divide(f, W::I64, DIV, true)?,
            O::I64DivU => self.divide(f, W::I64, DIV, false)?,
            O::I64RemS => self.divide(f, W::I64, MOD, true)?,
            O::I64RemU => self.divide(f, W::I64, MOD, false)?,
            O::I64And => self.binop(f, W::I64, AND)?,
            O::I64Or => self.binop(f, W::I64, OR)?,
            O::I64Xor => self.binop(f, W::I64, XOR)?,
            O::I64Shl => self.shift(f, W::I64, LSH)?,
            O::I64ShrS => self.shift(f, W::I64, ARSH)?,
            O::I64ShrU => self.shift(f, W::I64, RSH)?,
            O::I64Rotl => self.rotate(f, W::I64, true)?,
            O::I64Rotr => self.rotate(f, W::I64, false)?,
            O::I32WrapI64 => self.unary(f, |s| s.asm.alu_x(ALU, MOV, R1, R1))?,
            O::I64ExtendI32S => self.unary(f, |s| s.sign_extend(W::I64, 32))?,
            O::I64ExtendI32U => {}
            O::I32Extend8S => self.unary(f, |s| s.sign_extend(W::I32, 8))?,
            O::I32Extend16S => self.unary(f, |s| s.sign_extend(W::I32, 16))?,
            O::I64Extend8S => self.unary(f, |s| s.sign_extend(W::I64, 8))?,
            O::I64Extend16S => self.unary(f, |s| s.sign_extend(W::I64, 16))?,
            O::I64Extend32S => self.unary(f, |s| s.sign_extend(W::I64, 32))?,
            _ => bail!("not supported by the compiled tier"),
        }
        Ok(())
    }

    fn call(&mut self, f: &mut Func, func: u32) -> Result<()> {
        let sig = self.m.sig(func)?.clone();
        let n = sig.params.len();
        if f.h < n {
            bail!("operand stack underflow");
        }
        let base = f.h - n;
        if let Some(host) = self.m.imports.get(func as usize).copied() {
            let args: Vec<i16> = (base..f.h).map(|h| self.slot(f, h)).collect::<Result<_>>()?;
            f.h = base;
            return self.host(f, host, &args);
        }
        let depth = f.depth + 1;
        for (i, h) in (base..f.h).enumerate() {
            let (from, to) = (self.slot(f, h)?, self.frame_off(depth, i)?);
            self.ld(R1, from);
            self.st(to, R1);
        }
        f.h = base;
        let result = if sig.results.len() == 1 { Some(self.slot(f, base)?) } else { None };
        self.inline(func, depth, result)?;
        f.h = base + sig.results.len();
        Ok(())
    }

    /// R2 = R_MEM + the address in slot `ptr`, for `size` bytes; else a trap.
    fn host_range(&mut self, ptr: i16, size: usize) {
        self.ld(R2, ptr);
        let limit = self.t.mem_size as i64 - size as i64;
        if limit < 0 {
            self.asm.ja(self.trap);
            return;
        }
        self.asm.jmp_k(JMP, JGT, R2, limit as i32, self.trap);
        self.asm.alu_x(ALU64, ADD, R2, R_MEM);
    }

    fn host(&mut self, f: &mut Func, host: Host, args: &[i16]) -> Result<()> {
        match host {
            Host::CounterAdd => {
                let skip = self.asm.label();
                self.ld(R1, args[0]);
                self.asm.jmp_k(JMP, JGE, R1, self.t.counters as i32, skip);
                self.asm.alu_k(ALU64, LSH, R1, 3);
                self.asm.mov64(R2, R_CNT);
                self.asm.alu_x(ALU64, ADD, R2, R1);
                let off = (BUILTIN_COUNTERS * 8) as i16;
                self.asm.ldx(SZ_DW, R3, R2, off);
                self.ld(R4, args[1]);
                self.asm.alu_x(ALU64, ADD, R3, R4);
                self.asm.stx(SZ_DW, R2, off, R3);
                self.asm.bind(skip);
            }
            Host::NowNs => {
                self.asm.call(HELPER_KTIME_GET_NS);
                self.push(f, R0)?;
            }
            Host::MapDeclare | Host::CounterDeclare => {
                // Declaring is for init only.
                self.asm.alu_k(ALU, MOV, R1, abi::E_PERM);
                self.push(f, R1)?;
            }
            Host::Log => bail!("log on the packet path is not supported by the compiled tier yet"),
            Host::MapLookup | Host::MapUpdate | Host::MapDelete => {
                let result = self.slot(f, f.h)?;
                let done = self.asm.label();
                for (id, map) in self.t.maps.clone().into_iter().enumerate() {
                    let next = self.asm.label();
                    self.ld(R1, args[0]);
                    self.asm.jmp_k(JMP, JNE, R1, id as i32, next);
                    self.map_op(host, &map, args, result)?;
                    self.asm.ja(done);
                    self.asm.bind(next);
                }
                self.asm.alu_k(ALU, MOV, R1, abi::E_INVAL);
                self.st(result, R1);
                self.asm.bind(done);
                f.h += 1;
            }
        }
        Ok(())
    }

    /// One map operation on a known map; its i32 result into `result`.
    fn map_op(&mut self, host: Host, map: &MapRef, args: &[i16], result: i16) -> Result<()> {
        let (ks, vs) = (map.key_size, map.value_size);
        let hash = map.kind == MapKind::Hash;
        // Both ranges are checked first, as the engine does.
        self.host_range(args[1], ks);
        if host != Host::MapDelete {
            self.host_range(args[2], vs);
        }
        let out = self.asm.label();
        match host {
            Host::MapLookup => {
                self.host_range(args[1], ks);
                self.asm.map_fd(R1, map.fd);
                self.asm.call(HELPER_MAP_LOOKUP);
                let found = self.asm.label();
                self.asm.jmp_k(JMP, JNE, R0, 0, found);
                self.asm.alu_k(ALU64, MOV, R1, 0);
                self.st(result, R1);
                self.asm.ja(out);
                self.asm.bind(found);
                self.host_range(args[2], vs);
                let mut at = 0;
                for (size, width) in [(SZ_DW, 8), (SZ_W, 4), (SZ_H, 2), (SZ_B, 1)] {
                    while vs - at >= width {
                        self.asm.ldx(size, R3, R0, at as i16);
                        self.asm.stx(size, R2, at as i16, R3);
                        at += width;
                    }
                }
                self.asm.alu_k(ALU64, MOV, R1, 1);
                self.st(result, R1);
            }
            Host::MapUpdate => {
                self.host_range(args[2], vs);
                self.asm.mov64(R3, R2);
                self.host_range(args[1], ks);
                self.asm.map_fd(R1, map.fd);
                self.asm.alu_k(ALU64, MOV, R4, 0);
                self.asm.call(HELPER_MAP_UPDATE);
                let ok = self.asm.label();
                self.asm.alu_k(ALU64, MOV, R1, 0);
                self.asm.jmp_k(JMP, JEQ, R0, 0, ok);
                self.asm.alu_k(ALU, MOV, R1, if hash { abi::E_FULL } else { abi::E_NOENT });
                self.asm.bind(ok);
                self.st(result, R1);
            }
            Host::MapDelete if hash => {
                self.host_range(args[1], ks);
                self.asm.map_fd(R1, map.fd);
                self.asm.call(HELPER_MAP_DELETE);
                let gone = self.asm.label();
                self.asm.alu_k(ALU64, MOV, R1, 1);
                self.asm.jmp_k(JMP, JEQ, R0, 0, gone);
                self.asm.alu_k(ALU64, MOV, R1, 0);
                self.asm.bind(gone);
                self.st(result, R1);
            }
            _ => {
                self.asm.alu_k(ALU, MOV, R1, abi::E_INVAL);
                self.st(result, R1);
            }
        }
        self.asm.bind(out);
        Ok(())
    }
}
