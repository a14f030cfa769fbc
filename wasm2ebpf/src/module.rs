//! What the translator needs from a filter's `.wasm`: types, imports (as
//! host functions), function bodies, globals, exports and the memory size.

use anyhow::{anyhow, bail, Context, Result};
use wasmfw_engine::abi;
use wasmparser::{ConstExpr, ExternalKind, FunctionBody, Operator, Parser, Payload, TypeRef, ValType};

/// A host import of ABI v1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    MapDeclare,
    MapLookup,
    MapUpdate,
    MapDelete,
    CounterDeclare,
    CounterAdd,
    NowNs,
    Log,
}

impl Host {
    fn of(name: &str) -> Option<Host> {
        Some(match name {
            abi::IMPORT_MAP_DECLARE => Host::MapDeclare,
            abi::IMPORT_MAP_LOOKUP => Host::MapLookup,
            abi::IMPORT_MAP_UPDATE => Host::MapUpdate,
            abi::IMPORT_MAP_DELETE => Host::MapDelete,
            abi::IMPORT_COUNTER_DECLARE => Host::CounterDeclare,
            abi::IMPORT_COUNTER_ADD => Host::CounterAdd,
            abi::IMPORT_NOW_NS => Host::NowNs,
            abi::IMPORT_LOG => Host::Log,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
pub struct FuncSig {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
}

#[derive(Clone, Debug)]
pub struct Global {
    pub ty: ValType,
    pub mutable: bool,
    /// The value of its initialiser (immutable globals keep it).
    pub init: i64,
    pub export: Option<String>,
}

pub struct Body<'a> {
    /// Every local's type, parameters first.
    pub locals: Vec<ValType>,
    /// The operators with their byte offsets in the module.
    pub ops: Vec<(Operator<'a>, usize)>,
}

pub struct Module<'a> {
    pub types: Vec<FuncSig>,
    /// Type index of every function, imports first.
    pub funcs: Vec<u32>,
    pub imports: Vec<Host>,
    pub bodies: Vec<Body<'a>>,
    pub globals: Vec<Global>,
    pub exports: Vec<(String, u32)>,
}

impl<'a> Module<'a> {
    pub fn parse(wasm: &'a [u8]) -> Result<Module<'a>> {
        let mut m = Module {
            types: Vec::new(),
            funcs: Vec::new(),
            imports: Vec::new(),
            bodies: Vec::new(),
            globals: Vec::new(),
            exports: Vec::new(),
        };
        let mut global_exports = Vec::new();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload? {
                Payload::TypeSection(r) => {
                    for group in r {
                        for sub in group?.into_types() {
                            let f = sub.unwrap_func();
                            m.types.push(FuncSig { params: f.params().to_vec(), results: f.results().to_vec() });
                        }
                    }
                }
                Payload::ImportSection(r) => {
                    for imp in r {
                        let imp = imp?;
                        let TypeRef::Func(ty) = imp.ty else {
                            bail!("imports {}.{}, which is not a function", imp.module, imp.name)
                        };
                        let host = Host::of(imp.name)
                            .filter(|_| imp.module == abi::IMPORT_MODULE)
                            .ok_or_else(|| anyhow!("imports unknown function {}.{}", imp.module, imp.name))?;
                        m.imports.push(host);
                        m.funcs.push(ty);
                    }
                }
                Payload::FunctionSection(r) => {
                    for ty in r {
                        m.funcs.push(ty?);
                    }
                }
                Payload::GlobalSection(r) => {
                    for g in r {
                        let g = g?;
                        m.globals.push(Global {
                            ty: g.ty.content_type,
                            mutable: g.ty.mutable,
                            init: const_value(&g.init_expr)?,
                            export: None,
                        });
                    }
                }
                Payload::ExportSection(r) => {
                    for e in r {
                        let e = e?;
                        match e.kind {
                            ExternalKind::Func => m.exports.push((e.name.to_string(), e.index)),
                            ExternalKind::Global => global_exports.push((e.name.to_string(), e.index)),
                            _ => {}
                        }
                    }
                }
                Payload::CodeSectionEntry(body) => m.bodies.push(body_of(&body)?),
                _ => {}
            }
        }
        for (name, index) in global_exports {
            let g = m.globals.get_mut(index as usize).context("export of a missing global")?;
            g.export = Some(name);
        }
        Ok(m)
    }

    pub fn export(&self, name: &str) -> Option<u32> {
        self.exports.iter().find(|(n, _)| n == name).map(|e| e.1)
    }

    pub fn sig(&self, func: u32) -> Result<&FuncSig> {
        let ty = *self.funcs.get(func as usize).with_context(|| format!("no function {func}"))?;
        self.types.get(ty as usize).with_context(|| format!("no type {ty}"))
    }
}

fn const_value(e: &ConstExpr<'_>) -> Result<i64> {
    let mut r = e.get_operators_reader();
    match r.read()? {
        Operator::I32Const { value } => Ok(i64::from(value)),
        Operator::I64Const { value } => Ok(value),
        op => bail!("global initialiser {op:?} is not an integer constant"),
    }
}

fn body_of<'a>(body: &FunctionBody<'a>) -> Result<Body<'a>> {
    let mut locals = Vec::new();
    for l in body.get_locals_reader()? {
        let (n, ty) = l?;
        locals.extend(std::iter::repeat_n(ty, n as usize));
    }
    let mut ops = Vec::new();
    let mut r = body.get_operators_reader()?;
    while !r.eof() {
        ops.push(r.read_with_offset()?);
    }
    Ok(Body { locals, ops })
}
