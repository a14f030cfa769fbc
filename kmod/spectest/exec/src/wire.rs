//! The request/response encoding between the host runner and an executor
//! (in-process, or `wasmfw_spectest.ko` through its ioctl): little-endian,
//! length-prefixed, no allocation to decode a request.
//!
//! Request: op u8, then
//!   1 module: the binary module (rest of the buffer)
//!   2 register: inst u32, name str
//!   3 invoke: inst u32, field str, n u32, n x value
//!   4 get: inst u32, field str
//! Response: status u8, msg str, then for Ok: kind u8 (0 none, 1 instance
//! u32, 2 values: n u32, n x value). str = len u32 + bytes; value = tag u8
//! (0 i32, 1 i64, 2 f32, 3 f64, 4 funcref, 5 externref, 6 unsupported) +
//! bits u64 (refs: 1 non-null, 0 null).

use alloc::string::String;
use alloc::vec::Vec;

use crate::Resp;

/// Largest value count one request or response may carry.
pub const MAX_VALUES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// The module failed to decode or validate.
    Invalid = 1,
    /// Instantiation failed without a trap (imports, limits).
    Unlinkable = 2,
    /// A trap (in an invocation or in the start function/segments).
    Trap = 3,
    /// Call stack exhausted.
    Exhaustion = 4,
    /// Fuel ran out ([`crate::SPEC_FUEL`]).
    OutOfFuel = 5,
    /// Anything else: a bad request, a missing export.
    Other = 6,
    /// The kernel module only: the engine panicked (the command thread was
    /// abandoned, the session is gone).
    Panic = 7,
}

impl Status {
    pub fn from_u8(b: u8) -> Status {
        match b {
            0 => Status::Ok,
            1 => Status::Invalid,
            2 => Status::Unlinkable,
            3 => Status::Trap,
            4 => Status::Exhaustion,
            5 => Status::OutOfFuel,
            7 => Status::Panic,
            _ => Status::Other,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Invalid => "invalid",
            Status::Unlinkable => "unlinkable",
            Status::Trap => "trap",
            Status::Exhaustion => "exhaustion",
            Status::OutOfFuel => "out of fuel",
            Status::Other => "error",
            Status::Panic => "engine panic",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    I32(u32),
    I64(u64),
    F32(u32),
    F64(u64),
    FuncRef(bool),
    ExternRef(bool),
    Unsupported,
}

pub enum Req<'a> {
    Module(&'a [u8]),
    Register { inst: u32, name: &'a str },
    Invoke { inst: u32, field: &'a str, args: Vec<Value> },
    Get { inst: u32, field: &'a str },
}

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u32()? as usize;
        core::str::from_utf8(self.take(n)?).ok()
    }
    fn value(&mut self) -> Option<Value> {
        let tag = self.u8()?;
        let b = self.u64()?;
        Some(match tag {
            0 => Value::I32(b as u32),
            1 => Value::I64(b),
            2 => Value::F32(b as u32),
            3 => Value::F64(b),
            4 => Value::FuncRef(b != 0),
            5 => Value::ExternRef(b != 0),
            _ => Value::Unsupported,
        })
    }
    fn values(&mut self) -> Option<Vec<Value>> {
        let n = self.u32()? as usize;
        if n > MAX_VALUES {
            return None;
        }
        let mut v = Vec::new();
        v.try_reserve_exact(n).ok()?;
        for _ in 0..n {
            v.push(self.value()?);
        }
        Some(v)
    }
}

pub fn decode_req(b: &[u8]) -> Option<Req<'_>> {
    let mut r = Rd(b);
    Some(match r.u8()? {
        1 => Req::Module(r.0),
        2 => Req::Register { inst: r.u32()?, name: r.str()? },
        3 => Req::Invoke { inst: r.u32()?, field: r.str()?, args: r.values()? },
        4 => Req::Get { inst: r.u32()?, field: r.str()? },
        _ => return None,
    })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    let (tag, bits) = match *v {
        Value::I32(x) => (0u8, x as u64),
        Value::I64(x) => (1, x),
        Value::F32(x) => (2, x as u64),
        Value::F64(x) => (3, x),
        Value::FuncRef(x) => (4, x as u64),
        Value::ExternRef(x) => (5, x as u64),
        Value::Unsupported => (6, 0),
    };
    out.push(tag);
    out.extend_from_slice(&bits.to_le_bytes());
}

fn put_values(out: &mut Vec<u8>, vs: &[Value]) {
    out.extend_from_slice(&(vs.len() as u32).to_le_bytes());
    for v in vs {
        put_value(out, v);
    }
}

pub fn encode_module(out: &mut Vec<u8>, wasm: &[u8]) {
    out.push(1);
    out.extend_from_slice(wasm);
}

pub fn encode_register(out: &mut Vec<u8>, inst: u32, name: &str) {
    out.push(2);
    out.extend_from_slice(&inst.to_le_bytes());
    put_str(out, name);
}

pub fn encode_invoke(out: &mut Vec<u8>, inst: u32, field: &str, args: &[Value]) {
    out.push(3);
    out.extend_from_slice(&inst.to_le_bytes());
    put_str(out, field);
    put_values(out, args);
}

pub fn encode_get(out: &mut Vec<u8>, inst: u32, field: &str) {
    out.push(4);
    out.extend_from_slice(&inst.to_le_bytes());
    put_str(out, field);
}

/// Message bytes kept in a response (a wasmi error is one line).
pub const MAX_MSG: usize = 512;

pub fn encode_resp(out: &mut Vec<u8>, st: Status, msg: &str, r: &Resp) {
    out.push(st as u8);
    let mut end = msg.len().min(MAX_MSG);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    put_str(out, &msg[..end]);
    match r {
        Resp::None => out.push(0),
        Resp::Instance(i) => {
            out.push(1);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Resp::Values(vs) => {
            out.push(2);
            put_values(out, vs);
        }
    }
}

/// A decoded response.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: Status,
    pub msg: String,
    pub instance: Option<u32>,
    pub values: Vec<Value>,
}

pub fn decode_resp(b: &[u8]) -> Option<Response> {
    let mut r = Rd(b);
    let status = Status::from_u8(r.u8()?);
    let msg = String::from(r.str().unwrap_or("?"));
    let mut resp = Response { status, msg, instance: None, values: Vec::new() };
    match r.u8() {
        Some(1) => resp.instance = Some(r.u32()?),
        Some(2) => resp.values = r.values()?,
        _ => {}
    }
    Some(resp)
}
