#!/usr/bin/env python3
"""Generates the low-level declarations of every Tessera binding from the C ABI.

One source of truth: abi/include/tessera/{tessera_types.h, tessera.h,
tessera_ir.h} (the application ABI; tessera_backend.h is for plugins and is
not bound). The headers are parsed with a small C-declaration parser (Python
3 standard library only; the headers follow a fixed, simple style: typedef'd
enums, structs, opaque handles, one function-pointer typedef, exported
functions, integer #defines and *_STRUCT_SIZE macros). Anything it does not
understand is an error, never silently skipped.

Outputs (committed; `--check` fails when one is out of date):
  bindings/python/tessera/_abi.py              ctypes declarations
  bindings/rust/tessera-sys/src/generated.rs   extern "C" block + #[repr(C)] types
  bindings/julia/Tessera.jl/src/LibTessera.jl  ccall layer

Usage:
  scripts/gen_bindings.py            regenerate the files
  scripts/gen_bindings.py --check    exit 1 (with a diff) if any file differs
  scripts/gen_bindings.py --dump     print the parsed declarations (debugging)
See docs/bindings.md.
"""
import argparse
import difflib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADERS = ["tessera_types.h", "tessera.h", "tessera_ir.h"]
OUTPUTS = {
    "python": "bindings/python/tessera/_abi.py",
    "rust": "bindings/rust/tessera-sys/src/generated.rs",
    "julia": "bindings/julia/Tessera.jl/src/LibTessera.jl",
}
# Types the ABI only forward-declares and each binding defines by hand
# (DLPack is its own standard; see the binding's dlpack module).
EXTERNAL_STRUCTS = {"DLManagedTensor"}
PRIMS = {
    "void", "char", "size_t", "double", "float", "int",
    "int8_t", "int16_t", "int32_t", "int64_t",
    "uint8_t", "uint16_t", "uint32_t", "uint64_t",
}


class ParseError(Exception):
    pass


# ---------------------------------------------------------------- model ----

class CType:
    """A C type: base name (primitive or typedef) plus pointer levels.
    consts[0] is the constness of the base, consts[i] of pointer level i."""

    def __init__(self, base, consts):
        self.base = base
        self.consts = consts

    @property
    def depth(self):
        return len(self.consts) - 1

    def pointee(self):
        return CType(self.base, self.consts[:-1])

    def __repr__(self):
        s = ("const " if self.consts[0] else "") + self.base
        for c in self.consts[1:]:
            s += " *" + (" const" if c else "")
        return s


class Decl:
    def __init__(self, kind, name, doc, header, **kw):
        self.kind = kind      # enum, struct, opaque, callback, function, const
        self.name = name
        self.doc = doc
        self.header = header
        self.__dict__.update(kw)


# --------------------------------------------------------------- parser ----

def preprocess(text, header):
    """Drops preprocessor-inactive lines (#ifdef __cplusplus, the _WIN32
    branch) and returns (active text, int #defines, struct-size macros)."""
    out, stack, defines, sizes = [], [], {}, {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        # Join continued lines.
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        i += 1
        s = line.strip()
        active = all(stack)
        extra_blank = 0
        if s.startswith("#define") and "/*" in s and "*/" not in s[s.index("/*"):]:
            # A trailing comment that runs over the next lines.
            while i < len(lines) and "*/" not in lines[i]:
                s += " " + lines[i].strip()
                i += 1
                extra_blank += 1
            if i < len(lines):
                s += " " + lines[i].strip()
                i += 1
                extra_blank += 1
        if s.startswith("#"):
            out.extend([""] * extra_blank)
            d = s[1:].strip()
            if d.startswith("ifdef __cplusplus"):
                stack.append(False)
            elif d.startswith("if defined(_WIN32)"):
                stack.append(False)
            elif d.startswith("ifndef") or d.startswith("ifdef") or d.startswith("if "):
                stack.append(True)
            elif d.startswith("else"):
                if not stack:
                    raise ParseError(f"{header}: #else without #if")
                stack[-1] = not stack[-1]
            elif d.startswith("endif"):
                stack.pop()
            elif d.startswith("define") and active:
                m = re.match(r"define\s+(\w+)\s*(.*)$", d)
                name, val = m.group(1), m.group(2).strip()
                doc = None
                cm = re.search(r"/\*(.*?)\*/\s*$", val)
                if cm:
                    doc = " ".join(cm.group(1).split())
                    val = val[:cm.start()].strip()
                val = re.sub(r"^(-?(?:0x[0-9a-fA-F]+|\d+))[uUlL]+$", r"\1", val)
                mm = re.match(r"\(?\s*offsetof\((\w+),\s*(\w+)\)\s*\+\s*sizeof\(([^)]*)\)\s*\)?$", val)
                if name.endswith("_STRUCT_SIZE") and mm:
                    sizes[name] = (mm.group(1), mm.group(2))
                elif re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", val):
                    defines[name] = (int(val, 0), header, doc)
                elif name.endswith("_H_") or name == "TESSERA_EXPORT":
                    pass
                else:
                    raise ParseError(f"{header}: cannot translate #define {name} {val}")
            # #include and others: nothing to do
            out.append("")
            continue
        out.append(line if active else "")
    return "\n".join(out), defines, sizes


TOKEN = re.compile(r"""
    (?P<comment>/\*.*?\*/) |
    (?P<string>"[^"]*") |
    (?P<num>0x[0-9a-fA-F]+|\d+) |
    (?P<id>[A-Za-z_]\w*) |
    (?P<op><<|[{}();,*=|+\-\[\]])|
    (?P<ws>\s+)
""", re.S | re.X)


def tokenize(text, header):
    toks, pos = [], 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise ParseError(f"{header}:{line}: unexpected {text[pos:pos+20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        toks.append((kind, m.group(kind), text.count("\n", 0, m.start()) + 1))
    return toks


def clean_comment(c):
    body = c[2:-2]
    lines = [re.sub(r"^\s*\*? ?", "", ln).rstrip() for ln in body.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


class Parser:
    def __init__(self, toks, header):
        self.toks, self.i, self.header = toks, 0, header
        self.decls = []
        self.pending_doc = None

    def err(self, msg):
        line = self.toks[self.i][2] if self.i < len(self.toks) else "EOF"
        raise ParseError(f"{self.header}:{line}: {msg}")

    def peek(self, k=0):
        j = self.i
        n = k
        while j < len(self.toks):
            if self.toks[j][0] != "comment":
                if n == 0:
                    return self.toks[j][1]
                n -= 1
            j += 1
        return None

    def next(self):
        """Next non-comment token; comments become pending docs."""
        while self.i < len(self.toks) and self.toks[self.i][0] == "comment":
            self.i += 1
        if self.i >= len(self.toks):
            self.err("unexpected end of file")
        t = self.toks[self.i]
        self.i += 1
        return t[1]

    def expect(self, v):
        t = self.next()
        if t != v:
            self.err(f"expected {v!r}, got {t!r}")

    def take_doc(self):
        """Consumes comments before the next token; returns the last block."""
        doc = None
        while self.i < len(self.toks) and self.toks[self.i][0] == "comment":
            doc = clean_comment(self.toks[self.i][1])
            self.i += 1
        return doc

    def trailing_comment(self, line):
        """A comment that starts on `line` right after a member."""
        if self.i < len(self.toks) and self.toks[self.i][0] == "comment" and self.toks[self.i][2] == line:
            c = clean_comment(self.toks[self.i][1])
            self.i += 1
            return c
        return None

    def parse_type(self):
        consts = [False]
        base = None
        while True:
            t = self.peek()
            if t == "const":
                self.next()
                if base is None:
                    consts[0] = True
                else:
                    consts[-1] = True
            elif t == "struct" and base is None:
                self.next()
                base = self.next()
            elif t == "*":
                if base is None:
                    self.err("pointer without a type")
                self.next()
                consts.append(False)
            elif base is None and t is not None and re.match(r"[A-Za-z_]\w*$", t):
                self.next()
                base = t
            else:
                break
        if base is None:
            self.err("expected a type")
        return CType(base, consts)

    def parse(self):
        while True:
            doc = self.take_doc()
            if doc is not None:
                self.pending_doc = doc
            if self.i >= len(self.toks):
                break
            t = self.peek()
            if t == "typedef":
                self.parse_typedef()
            elif t == "TESSERA_EXPORT":
                self.parse_function()
            elif t == "struct":
                # forward declaration: struct X;
                self.next()
                name = self.next()
                self.expect(";")
                self.pending_doc = None
                if name not in EXTERNAL_STRUCTS and not name.startswith("tessera_"):
                    self.err(f"unknown forward declaration struct {name}")
            else:
                self.err(f"unexpected {t!r} at top level")
        return self.decls

    def doc(self):
        d, self.pending_doc = self.pending_doc, None
        return d

    def parse_typedef(self):
        doc = self.doc()
        self.expect("typedef")
        t = self.peek()
        if t == "enum":
            self.next()
            tag = self.next()
            self.expect("{")
            values = []
            expr_env = {}
            while self.peek() != "}":
                self.take_doc()
                if self.peek() == "}":
                    break
                name = self.next()
                expr = []
                if self.peek() == "=":
                    self.next()
                    while self.peek() not in (",", "}"):
                        expr.append(self.next())
                    value = eval(" ".join(expr), {"__builtins__": {}}, dict(expr_env))
                else:
                    value = values[-1][1] + 1 if values else 0
                line = self.toks[self.i - 1][2]
                if self.peek() == ",":
                    self.next()
                comment = self.trailing_comment(line)
                if comment:
                    comment = " ".join(comment.split())
                expr_env[name] = value
                values.append((name, value, comment))
            self.take_doc()
            self.expect("}")
            name = self.next()
            self.expect(";")
            if name != tag:
                self.err(f"enum tag {tag} != typedef {name}")
            self.decls.append(Decl("enum", name, doc, self.header, values=values))
        elif t == "struct":
            self.next()
            tag = self.next()
            if self.peek() == "{":
                self.next()
                fields = []
                while True:
                    self.take_doc()
                    if self.peek() == "}":
                        break
                    ftype = self.parse_type()
                    fname = self.next()
                    line = self.toks[self.i - 1][2]
                    self.expect(";")
                    fields.append((fname, ftype, self.trailing_comment(line)))
                self.expect("}")
                name = self.next()
                self.expect(";")
                if name != tag:
                    self.err(f"struct tag {tag} != typedef {name}")
                self.decls.append(Decl("struct", name, doc, self.header, fields=fields, size_field=None))
            else:
                name = self.next()
                self.expect(";")
                self.decls.append(Decl("opaque", name, doc, self.header))
        else:
            ret = self.parse_type()
            self.expect("(")
            self.expect("*")
            name = self.next()
            self.expect(")")
            params = self.parse_params()
            self.expect(";")
            self.decls.append(Decl("callback", name, doc, self.header, ret=ret, params=params))

    def parse_params(self):
        self.expect("(")
        params = []
        if self.peek() == "void" and self.peek(1) == ")":
            self.next()
        while self.peek() != ")":
            ptype = self.parse_type()
            pname = self.next()
            params.append((pname, ptype))
            if self.peek() == ",":
                self.next()
        self.expect(")")
        return params

    def parse_function(self):
        doc = self.doc()
        self.expect("TESSERA_EXPORT")
        ret = self.parse_type()
        name = self.next()
        params = self.parse_params()
        self.expect(";")
        self.decls.append(Decl("function", name, doc, self.header, ret=ret, params=params))


def parse_headers(include_dir):
    decls, defines, sizes = [], {}, {}
    for h in HEADERS:
        with open(os.path.join(include_dir, "tessera", h)) as f:
            text, d, s = preprocess(f.read(), h)
        defines.update(d)
        sizes.update(s)
        decls += Parser(tokenize(text, h), h).parse()
    by_name = {d.name: d for d in decls}
    for macro, (struct, field) in sizes.items():
        st = by_name.get(struct)
        if st is None or st.kind != "struct" or field not in [f[0] for f in st.fields]:
            raise ParseError(f"{macro}: no field {struct}.{field}")
        st.size_field = (macro, field)
    consts = [Decl("const", k, doc, h, value=v) for k, (v, h, doc) in defines.items()]
    # Every referenced type must be known.
    known = set(by_name) | PRIMS | EXTERNAL_STRUCTS
    for d in decls:
        types = []
        if d.kind == "struct":
            types = [f[1] for f in d.fields]
        elif d.kind in ("function", "callback"):
            types = [d.ret] + [p[1] for p in d.params]
        for t in types:
            if t.base not in known:
                raise ParseError(f"{d.header}: {d.name} uses unknown type {t.base}")
    return consts, decls


# --------------------------------------------------------------- common ----

HEADER_NOTE = "Generated by scripts/gen_bindings.py from abi/include/tessera/{}. Do not edit."


def kinds(decls, kind):
    return [d for d in decls if d.kind == kind]


def enum_names(decls):
    return {d.name for d in decls if d.kind == "enum"}


# --------------------------------------------------------------- python ----

PY_PRIM = {
    "char": "ctypes.c_char", "size_t": "ctypes.c_size_t", "double": "ctypes.c_double",
    "float": "ctypes.c_float", "int": "ctypes.c_int",
    "int8_t": "ctypes.c_int8", "int16_t": "ctypes.c_int16", "int32_t": "ctypes.c_int32",
    "int64_t": "ctypes.c_int64", "uint8_t": "ctypes.c_uint8", "uint16_t": "ctypes.c_uint16",
    "uint32_t": "ctypes.c_uint32", "uint64_t": "ctypes.c_uint64",
}


def py_type(t, decls_by):
    """ctypes type for t. Opaque handles and void* are c_void_p (fast, plain
    ints); char* is c_char_p; pointers to structs are POINTER(struct)."""
    d = decls_by.get(t.base)
    if t.depth == 0:
        if t.base == "void":
            return "None"
        if t.base in PY_PRIM:
            return PY_PRIM[t.base]
        if d.kind == "enum":
            return "ctypes.c_int"
        if d.kind in ("struct", "callback"):
            return t.base
        raise ParseError(f"cannot pass {t} by value")
    if t.depth == 1:
        if t.base == "char":
            return "ctypes.c_char_p"
        if t.base == "void" or t.base in EXTERNAL_STRUCTS or (d and d.kind == "opaque"):
            return "ctypes.c_void_p"
    inner = t.pointee()
    if inner.depth >= 1 and (inner.base in ("void",) or inner.base in EXTERNAL_STRUCTS or
                             (decls_by.get(inner.base) and decls_by[inner.base].kind == "opaque")) and inner.depth == 1:
        return "ctypes.POINTER(ctypes.c_void_p)"
    return f"ctypes.POINTER({py_type(inner, decls_by)})"


def py_doc(doc, indent=""):
    if not doc:
        return []
    return [indent + "# " + ln if ln else indent + "#" for ln in doc.split("\n")]


def gen_python(consts, decls):
    by = {d.name: d for d in decls}
    o = [f'"""Low-level ctypes declarations of the Tessera C ABI.',
         "",
         HEADER_NOTE.format(", ".join(HEADERS)),
         "Use the `tessera` package API instead; this module mirrors the C headers",
         "one to one (enums as IntEnum plus module constants, structs as",
         "ctypes.Structure, opaque handles as c_void_p, functions bound by",
         "bind(lib)).",
         '"""',
         "import ctypes",
         "import enum",
         "", ""]
    for c in consts:
        o.append(f"{c.name} = {c.value}" + (f"  # {c.doc}" if c.doc else ""))
    o.append("")
    for d in decls:
        if d.kind == "enum":
            o += ["", *py_doc(d.doc), f"class {d.name}(enum.IntEnum):"]
            for n, v, c in d.values:
                val = f"{v:#x}" if v >= 0x10000 else str(v)
                o.append(f"    {n} = {val}" + (f"  # {c}" if c else ""))
            o.append("")
            for n, v, c in d.values:
                o.append(f"{n} = {d.name}.{n}")
        elif d.kind == "opaque":
            o += ["", *py_doc(d.doc), f"{d.name} = ctypes.c_void_p  # opaque handle"]
        elif d.kind == "callback":
            args = ", ".join([py_type(d.ret, by)] + [py_type(p[1], by) for p in d.params])
            o += ["", *py_doc(d.doc), f"{d.name} = ctypes.CFUNCTYPE({args})"]
        elif d.kind == "struct":
            o += ["", "", *py_doc(d.doc), f"class {d.name}(ctypes.Structure):", "    _fields_ = ["]
            for fname, ftype, c in d.fields:
                o.append(f"        ({fname!r}, {py_type(ftype, by)}),")
            o.append("    ]")
            if d.size_field:
                macro, field = d.size_field
                ft = [f[1] for f in d.fields if f[0] == field][0]
                o += ["", f"{macro} = {d.name}.{field}.offset + ctypes.sizeof({py_type(ft, by)})"]
    o += ["", "", "# name -> (restype, argtypes); the order of the headers.", "FUNCTIONS = {"]
    for d in kinds(decls, "function"):
        args = ", ".join(py_type(p[1], by) for p in d.params)
        o.append(f"    {d.name!r}: ({py_type(d.ret, by)}, [{args}]),")
    o += ["}", "", "# Parameter names, for error messages and docs.", "PARAMETERS = {"]
    for d in kinds(decls, "function"):
        o.append(f"    {d.name!r}: {tuple(p[0] for p in d.params)!r},")
    o += ["}", "", "",
          "def bind(lib):",
          '    """Sets restype/argtypes of every ABI function on the ctypes.CDLL `lib`.',
          "    Functions the library lacks (an older libtessera) are left unset and",
          '    listed in the returned list."""',
          "    missing = []",
          "    for name, (restype, argtypes) in FUNCTIONS.items():",
          "        try:",
          "            fn = getattr(lib, name)",
          "        except AttributeError:",
          "            missing.append(name)",
          "            continue",
          "        fn.restype = restype",
          "        fn.argtypes = argtypes",
          "    return missing",
          ""]
    return "\n".join(o)


# ----------------------------------------------------------------- rust ----

RS_PRIM = {
    "void": "c_void", "char": "c_char", "size_t": "usize", "double": "f64", "float": "f32",
    "int": "c_int", "int8_t": "i8", "int16_t": "i16", "int32_t": "i32", "int64_t": "i64",
    "uint8_t": "u8", "uint16_t": "u16", "uint32_t": "u32", "uint64_t": "u64",
}


def rs_type(t, by):
    if t.depth == 0:
        if t.base in RS_PRIM:
            return RS_PRIM[t.base]
        if t.base in EXTERNAL_STRUCTS:
            return f"crate::dlpack::{t.base}"
        return t.base
    inner = rs_type(t.pointee(), by)
    return ("*const " if t.consts[-2] else "*mut ") + inner


def rs_doc(doc, indent=""):
    if not doc:
        return []
    return [indent + "/// " + ln if ln else indent + "///" for ln in doc.split("\n")]


RS_KEYWORDS = {"type", "fn", "struct", "enum", "match", "ref", "mod", "use", "impl", "trait", "move", "loop",
               "where", "self", "super", "crate", "in", "as", "box", "dyn", "async", "await", "unsafe", "static",
               "const", "let", "mut", "pub", "return", "if", "else", "for", "while", "break", "continue", "extern"}


def rs_name(n):
    return f"r#{n}" if n in RS_KEYWORDS else n


def gen_rust(consts, decls):
    by = {d.name: d for d in decls}
    o = ["// " + HEADER_NOTE.format(", ".join(HEADERS)),
         "// Raw FFI: enums are integer type aliases plus constants (a library may",
         "// return values this crate does not know); opaque handles are zero-sized",
         "// #[repr(C)] structs used only behind pointers.",
         "#![allow(non_camel_case_types, non_upper_case_globals, dead_code, clippy::all)]",
         "",
         "use core::ffi::{c_char, c_int, c_void};",
         "use core::marker::{PhantomData, PhantomPinned};",
         ""]
    for c in consts:
        ty = "usize" if c.name == "TESSERA_MAX_RANK" else "u32"
        o += rs_doc(c.doc) + [f"pub const {c.name}: {ty} = {c.value};"]
    for d in decls:
        if d.kind == "enum":
            o += ["", *rs_doc(d.doc), f"pub type {d.name} = c_int;"]
            for n, v, c in d.values:
                o += rs_doc(c) + [f"pub const {n}: {d.name} = {v:#x};" if v >= 0x10000 else
                                  f"pub const {n}: {d.name} = {v};"]
        elif d.kind == "opaque":
            o += ["", *rs_doc(d.doc), "#[repr(C)]",
                  f"pub struct {d.name} {{",
                  "    _data: [u8; 0],",
                  "    _marker: PhantomData<(*mut u8, PhantomPinned)>,",
                  "}"]
        elif d.kind == "callback":
            args = ", ".join(f"{rs_name(p[0])}: {rs_type(p[1], by)}" for p in d.params)
            ret = "" if (d.ret.base == "void" and d.ret.depth == 0) else f" -> {rs_type(d.ret, by)}"
            o += ["", *rs_doc(d.doc), f'pub type {d.name} = Option<unsafe extern "C" fn({args}){ret}>;']
        elif d.kind == "struct":
            o += ["", *rs_doc(d.doc), "#[repr(C)]", "#[derive(Debug, Copy, Clone)]", f"pub struct {d.name} {{"]
            for fname, ftype, c in d.fields:
                o += rs_doc(c, "    ") + [f"    pub {rs_name(fname)}: {rs_type(ftype, by)},"]
            o += ["}",
                  f"impl Default for {d.name} {{",
                  "    /// All fields zero (NULL pointers); set struct_size before use.",
                  "    fn default() -> Self {",
                  "        unsafe { core::mem::zeroed() }",
                  "    }",
                  "}"]
            if d.size_field:
                macro, field = d.size_field
                ft = [f[1] for f in d.fields if f[0] == field][0]
                o += [f"pub const {macro}: usize =",
                      f"    core::mem::offset_of!({d.name}, {field}) + core::mem::size_of::<{rs_type(ft, by)}>();"]
    o += ["", 'extern "C" {']
    for d in kinds(decls, "function"):
        args = ", ".join(f"{rs_name(p[0])}: {rs_type(p[1], by)}" for p in d.params)
        ret = "" if (d.ret.base == "void" and d.ret.depth == 0) else f" -> {rs_type(d.ret, by)}"
        o += rs_doc(d.doc, "    ") + [f"    pub fn {d.name}({args}){ret};"]
    o += ["}", "", "/// Every function of the ABI, in header order (used by tests).",
          "pub const FUNCTION_NAMES: &[&str] = &["]
    for d in kinds(decls, "function"):
        o.append(f'    "{d.name}",')
    o += ["];", ""]
    return "\n".join(o)


# ---------------------------------------------------------------- julia ----

JL_PRIM = {
    "void": "Cvoid", "char": "Cchar", "size_t": "Csize_t", "double": "Cdouble", "float": "Cfloat",
    "int": "Cint", "int8_t": "Int8", "int16_t": "Int16", "int32_t": "Int32", "int64_t": "Int64",
    "uint8_t": "UInt8", "uint16_t": "UInt16", "uint32_t": "UInt32", "uint64_t": "UInt64",
}


def jl_type(t, by):
    if t.depth == 0:
        if t.base in JL_PRIM:
            return JL_PRIM[t.base]
        if t.base in EXTERNAL_STRUCTS:
            return t.base
        d = by[t.base]
        if d.kind == "callback":
            return "Ptr{Cvoid}"
        return t.base
    return f"Ptr{{{jl_type(t.pointee(), by)}}}"


def jl_doc(doc):
    if not doc:
        return []
    return ['"""', *[ln.replace("\\", "\\\\").replace("$", "\\$").replace('"""', '\\"\\"\\"') for ln in doc.split("\n")], '"""']


JL_KEYWORDS = {"function", "end", "module", "baremodule", "struct", "mutable", "begin", "let", "global", "local",
               "quote", "do", "try", "catch", "finally", "for", "while", "if", "else", "elseif", "return", "import",
               "using", "export", "const", "macro", "abstract", "primitive", "break", "continue", "type", "in",
               "isa", "where", "outer"}


def gen_julia(consts, decls):
    by = {d.name: d for d in decls}
    o = ["# " + HEADER_NOTE.format(", ".join(HEADERS)),
         "# The ccall layer of Tessera.jl: one Julia function per C function, same",
         "# name and argument order. Enums are Cint aliases plus constants; opaque",
         "# handles are empty mutable structs used only as Ptr{T}.",
         "# Included into module Tessera, which defines beforehand:",
         "#   const libtessera::String   (path of libtessera.so, see Tessera.jl)",
         "#   struct DLManagedTensor      (dlpack.jl)",
         ""]
    for c in consts:
        o.append(f"const {c.name} = {c.value}" + (f"  # {c.doc}" if c.doc else ""))
    for d in decls:
        if d.kind == "enum":
            o += ["", f"const {d.name} = Cint"]
            for n, v, c in d.values:
                o.append(f"const {n} = {d.name}({v:#x})" if v >= 0x10000 else f"const {n} = {d.name}({v})")
        elif d.kind == "opaque":
            o += ["", f"mutable struct {d.name} end"]
        elif d.kind == "callback":
            o += ["", f"const {d.name} = Ptr{{Cvoid}}  # C function pointer"]
        elif d.kind == "struct":
            o += ["", *jl_doc(d.doc), f"struct {d.name}"]
            for fname, ftype, c in d.fields:
                o.append(f"    {fname}::{jl_type(ftype, by)}")
            o.append("end")
            if d.size_field:
                macro, field = d.size_field
                idx = [f[0] for f in d.fields].index(field) + 1
                o += [f"const {macro} = Int(fieldoffset({d.name}, {idx})) + sizeof(fieldtype({d.name}, {idx}))"]
    for d in kinds(decls, "function"):
        names = [p[0] + "_" if p[0] in JL_KEYWORDS else p[0] for p in d.params]
        types = [jl_type(p[1], by) for p in d.params]
        tup = "(" + ", ".join(types) + ("," if len(types) == 1 else "") + ")"
        o += ["", *jl_doc(d.doc),
              f"function {d.name}({', '.join(names)})",
              f"    ccall((:{d.name}, libtessera), {jl_type(d.ret, by)}, {tup}{''.join(', ' + n for n in names)})",
              "end"]
    o += [""]
    return "\n".join(o)


# ----------------------------------------------------------------- main ----

GENERATORS = {"python": gen_python, "rust": gen_rust, "julia": gen_julia}


def generate(include_dir):
    consts, decls = parse_headers(include_dir)
    return {lang: GENERATORS[lang](consts, decls) for lang in OUTPUTS}, consts, decls


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="fail if a generated file is out of date")
    ap.add_argument("--dump", action="store_true", help="print the parsed declarations")
    ap.add_argument("--include", default=os.path.join(ROOT, "abi", "include"))
    ap.add_argument("--root", default=ROOT, help="repository root the outputs are relative to")
    args = ap.parse_args(argv)
    try:
        texts, consts, decls = generate(args.include)
    except ParseError as e:
        print(f"gen_bindings: parse error: {e}", file=sys.stderr)
        return 2
    if args.dump:
        for d in consts + decls:
            extra = getattr(d, "params", None) or getattr(d, "fields", None) or getattr(d, "values", None) or getattr(d, "value", "")
            print(d.kind, d.name, extra)
        return 0
    stale = 0
    for lang, rel in OUTPUTS.items():
        path = os.path.join(args.root, rel)
        old = open(path).read() if os.path.exists(path) else None
        if old == texts[lang]:
            continue
        if args.check:
            stale += 1
            print(f"gen_bindings: {rel} is out of date; run scripts/gen_bindings.py", file=sys.stderr)
            diff = difflib.unified_diff((old or "").splitlines(), texts[lang].splitlines(),
                                        rel + " (committed)", rel + " (generated)", lineterm="", n=1)
            for i, line in enumerate(diff):
                if i > 60:
                    print("...", file=sys.stderr)
                    break
                print(line, file=sys.stderr)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(texts[lang])
            print(f"gen_bindings: wrote {rel}")
    n = len(kinds(decls, "function"))
    if args.check:
        if stale:
            return 1
        print(f"gen_bindings: {len(OUTPUTS)} files up to date ({n} functions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
