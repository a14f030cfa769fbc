//! A tiny eBPF assembler: instructions, registers, forward and backward
//! labels resolved into 16-bit jump offsets at the end.

use anyhow::{bail, Result};
use wasmfw_xdp_bridge::sys::Insn;

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
/// The program's context (`struct xdp_md *`).
pub const R_CTX: u8 = 6;
/// Base of the auxiliary area (globals, fuel, frames), `R_MEM + memory size`.
pub const R_AUX: u8 = 7;
/// This CPU's counters (a per-CPU array value).
pub const R_CNT: u8 = 8;
/// Base of this CPU's linear memory (an array-map value).
pub const R_MEM: u8 = 9;
pub const R_FP: u8 = 10;

// Instruction classes and fields (include/uapi/linux/bpf_common.h, bpf.h).
pub const LDX: u8 = 0x01;
pub const STX: u8 = 0x03;
pub const ALU: u8 = 0x04;
pub const JMP: u8 = 0x05;
pub const JMP32: u8 = 0x06;
pub const ALU64: u8 = 0x07;
pub const MEM: u8 = 0x60;
pub const SZ_W: u8 = 0x00;
pub const SZ_H: u8 = 0x08;
pub const SZ_B: u8 = 0x10;
pub const SZ_DW: u8 = 0x18;
pub const K: u8 = 0x00;
pub const X: u8 = 0x08;

pub const ADD: u8 = 0x00;
pub const SUB: u8 = 0x10;
pub const MUL: u8 = 0x20;
pub const DIV: u8 = 0x30;
pub const OR: u8 = 0x40;
pub const AND: u8 = 0x50;
pub const LSH: u8 = 0x60;
pub const RSH: u8 = 0x70;
pub const NEG: u8 = 0x80;
pub const MOD: u8 = 0x90;
pub const XOR: u8 = 0xa0;
pub const MOV: u8 = 0xb0;
pub const ARSH: u8 = 0xc0;

pub const JA: u8 = 0x00;
pub const JEQ: u8 = 0x10;
pub const JGT: u8 = 0x20;
pub const JGE: u8 = 0x30;
pub const JNE: u8 = 0x50;
pub const JSGT: u8 = 0x60;
pub const JSGE: u8 = 0x70;
pub const CALL: u8 = 0x80;
pub const EXIT: u8 = 0x90;
pub const JLT: u8 = 0xa0;
pub const JLE: u8 = 0xb0;
pub const JSLT: u8 = 0xc0;
pub const JSLE: u8 = 0xd0;
/// `may_goto` (BPF_JCOND, src_reg BPF_MAY_GOTO): taken once the kernel's
/// hidden per-run loop budget is spent; what makes the verifier accept an
/// open-coded loop it cannot bound (kernel >= 6.9).
pub const JCOND: u8 = 0xe0;

/// `ld_imm64` with src_reg BPF_PSEUDO_MAP_FD: imm is a map fd.
const PSEUDO_MAP_FD: u8 = 1;

/// A jump target; bound once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Clone, Copy)]
struct Raw {
    code: u8,
    dst: u8,
    src: u8,
    off: i16,
    imm: i32,
}

#[derive(Default)]
pub struct Asm {
    insns: Vec<Raw>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    fn raw(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Raw { code, dst, src, off, imm });
    }

    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn bind(&mut self, l: Label) {
        debug_assert!(self.labels[l.0].is_none(), "label bound twice");
        self.labels[l.0] = Some(self.insns.len());
    }

    /// `dst op= imm` (`class` ALU or ALU64).
    pub fn alu_k(&mut self, class: u8, op: u8, dst: u8, imm: i32) {
        self.raw(class | op | K, dst, 0, 0, imm);
    }

    /// `dst op= src`.
    pub fn alu_x(&mut self, class: u8, op: u8, dst: u8, src: u8) {
        self.raw(class | op | X, dst, src, 0, 0);
    }

    /// Signed division or modulo (`off` 1, cpu v4).
    pub fn alu_x_signed(&mut self, class: u8, op: u8, dst: u8, src: u8) {
        self.raw(class | op | X, dst, src, 1, 0);
    }

    pub fn mov64(&mut self, dst: u8, src: u8) {
        self.alu_x(ALU64, MOV, dst, src);
    }

    /// `dst = imm` as a 64-bit value.
    pub fn imm64(&mut self, dst: u8, v: i64) {
        if let Ok(small) = i32::try_from(v) {
            self.alu_k(ALU64, MOV, dst, small);
        } else {
            self.raw(0x18, dst, 0, 0, v as i32);
            self.raw(0, 0, 0, 0, (v >> 32) as i32);
        }
    }

    /// `dst = map` (a map fd, relocated by the kernel).
    pub fn map_fd(&mut self, dst: u8, fd: i32) {
        self.raw(0x18, dst, PSEUDO_MAP_FD, 0, fd);
        self.raw(0, 0, 0, 0, 0);
    }

    /// `dst = *(size *)(src + off)`.
    pub fn ldx(&mut self, size: u8, dst: u8, src: u8, off: i16) {
        self.raw(LDX | MEM | size, dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = src`.
    pub fn stx(&mut self, size: u8, dst: u8, off: i16, src: u8) {
        self.raw(STX | MEM | size, dst, src, off, 0);
    }

    pub fn call(&mut self, helper: i32) {
        self.raw(JMP | CALL, 0, 0, 0, helper);
    }

    pub fn exit(&mut self) {
        self.raw(JMP | EXIT, 0, 0, 0, 0);
    }

    pub fn ja(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(JMP | JA, 0, 0, 0, 0);
    }

    /// `if dst op imm goto to` (`class` JMP or JMP32).
    pub fn jmp_k(&mut self, class: u8, op: u8, dst: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(class | op | K, dst, 0, 0, imm);
    }

    pub fn jmp_x(&mut self, class: u8, op: u8, dst: u8, src: u8, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(class | op | X, dst, src, 0, 0);
    }

    /// `may_goto to`.
    pub fn may_goto(&mut self, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.raw(JMP | JCOND, 0, 0, 0, 0);
    }

    /// The program, every label resolved and unreachable code removed
    /// (the verifier refuses dead instructions, and Wasm code after a
    /// loop that never exits, say, is dead).
    pub fn finish(self) -> Result<Vec<Insn>> {
        let insns = self.insns;
        // Every instruction's jump target, by index.
        let mut target = vec![None; insns.len()];
        for (at, l) in self.fixups {
            let Some(t) = self.labels[l.0] else { bail!("internal: label {} never bound", l.0) };
            if t >= insns.len() {
                bail!("internal: label {} bound past the end", l.0);
            }
            target[at] = Some(t);
        }
        let mut live = vec![false; insns.len()];
        let mut todo = vec![0usize];
        while let Some(i) = todo.pop() {
            if i >= insns.len() || live[i] {
                continue;
            }
            live[i] = true;
            let code = insns[i].code;
            let class = code & 0x07;
            if code == 0x18 {
                // ld_imm64: two slots, one instruction.
                if i + 1 < insns.len() {
                    live[i + 1] = true;
                }
                todo.push(i + 2);
                continue;
            }
            let jumps = class == JMP || class == JMP32;
            let op = code & 0xf0;
            if jumps && (op == EXIT) {
                continue;
            }
            if let Some(t) = target[i] {
                todo.push(t);
            }
            if !(jumps && op == JA && class == JMP) {
                todo.push(i + 1);
            }
        }
        let mut new_index = vec![0usize; insns.len() + 1];
        let mut n = 0;
        for i in 0..insns.len() {
            new_index[i] = n;
            n += usize::from(live[i]);
        }
        new_index[insns.len()] = n;
        let mut out = Vec::with_capacity(n);
        for (i, mut r) in insns.into_iter().enumerate() {
            if !live[i] {
                continue;
            }
            if let Some(t) = target[i] {
                let off = new_index[t] as i64 - new_index[i] as i64 - 1;
                let Ok(off) = i16::try_from(off) else {
                    bail!("jump from instruction {} to {} is out of eBPF's 16-bit range", new_index[i], new_index[t])
                };
                r.off = off;
            }
            out.push(Insn::new(r.code, r.dst, r.src, r.off, r.imm));
        }
        Ok(out)
    }
}
