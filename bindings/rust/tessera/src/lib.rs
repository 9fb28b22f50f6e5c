//! Safe Rust API of Tessera over its C ABI (`tessera-sys`, generated).
//!
//! ```no_run
//! use tessera::{Context, CompileOptions, Tensor};
//! let ctx = Context::new()?;
//! let cpu = ctx.device("cpu")?;
//! let m = ctx.compile(
//!     "func @main(%a: tensor<N x f32>, %b: tensor<N x f32>) -> tensor<N x f32> {\n  %c = add(%a, %b)\n  return %c\n}",
//!     &cpu, &CompileOptions::default())?;
//! let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [10.0f32; 4]);
//! let out = m.run(&[&Tensor::view(&ctx, &[4], &a)?, &Tensor::view(&ctx, &[4], &b)?])?;
//! assert_eq!(out[0].as_slice::<f32>()?, &[11.0, 12.0, 13.0, 14.0]);
//! # Ok::<(), tessera::Error>(())
//! ```
//!
//! Ownership: every handle frees itself on drop. Lifetimes tie modules,
//! devices and tensors to their [`Context`] (and zero-copy views to the
//! borrowed slice), so use after free does not compile:
//!
//! ```compile_fail
//! let ctx = tessera::Context::new().unwrap();
//! let dev = ctx.device("cpu").unwrap();
//! drop(ctx); // error: `ctx` is still borrowed by `dev`
//! let _ = dev.info();
//! ```
//!
//! Threading: `Context`, `Module`, `Program` and `Tensor` are `Send + Sync`;
//! `Module::run` may be called from several threads at once (the ABI's
//! `tessera_module_run` is thread-safe).
//! Errors: every fallible call returns [`Result`] with the ABI's code,
//! message and location.
use std::ffi::{c_char, c_void, CStr, CString};
use std::fmt;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

pub use tessera_sys as sys;
use tessera_sys::dlpack::{DLDataType, DLDevice, DLManagedTensor, DLTensor};

// ---- errors -------------------------------------------------------------------

/// The ABI's `tessera_status_code_t` (unknown codes read as `Internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum StatusCode {
    InvalidArgument = 1,
    OutOfMemory = 2,
    NotFound = 3,
    Unsupported = 4,
    IncompatibleVersion = 5,
    MissingDependency = 6,
    NoDevice = 7,
    InvalidIr = 8,
    ShapeMismatch = 9,
    LoadFailed = 10,
    Busy = 11,
    DeviceError = 12,
    CorruptData = 13,
    IoError = 14,
    ResourceExhausted = 15,
    Internal = 16,
}

impl StatusCode {
    fn from_raw(c: i32) -> Self {
        use StatusCode::*;
        match c {
            1 => InvalidArgument, 2 => OutOfMemory, 3 => NotFound, 4 => Unsupported,
            5 => IncompatibleVersion, 6 => MissingDependency, 7 => NoDevice, 8 => InvalidIr,
            9 => ShapeMismatch, 10 => LoadFailed, 11 => Busy, 12 => DeviceError, 13 => CorruptData,
            14 => IoError, 15 => ResourceExhausted, _ => Internal,
        }
    }
}

/// A failed call: code, UTF-8 message ("file:line:col: error: ..." for
/// located errors) and the primary source location, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: StatusCode,
    pub message: String,
    pub location: Option<(String, u32, u32)>,
}

impl Error {
    fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), location: None }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:?}] {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
}

/// Turns an owned status pointer into `Err` (and frees it).
fn check(st: *mut sys::tessera_status_t) -> Result<()> {
    if st.is_null() {
        return Ok(());
    }
    unsafe {
        let code = StatusCode::from_raw(sys::tessera_status_code(st));
        let message = cstr(sys::tessera_status_message(st));
        let mut loc = sys::tessera_source_location_t { struct_size: sys::TESSERA_SOURCE_LOCATION_STRUCT_SIZE, ..Default::default() };
        sys::tessera_status_location(st, &mut loc);
        let location = if loc.line != 0 { Some((cstr(loc.file), loc.line, loc.column)) } else { None };
        sys::tessera_status_free(st);
        Err(Error { code, message, location })
    }
}

fn c_string(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(StatusCode::InvalidArgument, "string contains a NUL byte"))
}

unsafe fn blob_string(b: *mut sys::tessera_blob_t) -> String {
    let n = sys::tessera_blob_size(b);
    let d = sys::tessera_blob_data(b) as *const u8;
    let s = String::from_utf8_lossy(std::slice::from_raw_parts(d, n)).into_owned();
    sys::tessera_blob_free(b);
    s
}

unsafe fn blob_bytes(b: *mut sys::tessera_blob_t) -> Vec<u8> {
    let n = sys::tessera_blob_size(b);
    let v = std::slice::from_raw_parts(sys::tessera_blob_data(b) as *const u8, n).to_vec();
    sys::tessera_blob_free(b);
    v
}

// ---- dtypes -------------------------------------------------------------------

/// Element types (`tessera_dtype_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DType {
    F64 = 1, F32 = 2, F16 = 3, BF16 = 4, F8E4M3 = 5, F8E5M2 = 6,
    I64 = 7, I32 = 8, I8 = 9, U8 = 10, Bool = 11, I16 = 12,
}

impl DType {
    pub fn from_raw(v: i32) -> Option<Self> {
        use DType::*;
        Some(match v {
            1 => F64, 2 => F32, 3 => F16, 4 => BF16, 5 => F8E4M3, 6 => F8E5M2, 7 => I64, 8 => I32,
            9 => I8, 10 => U8, 11 => Bool, 12 => I16, _ => return None,
        })
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        use DType::*;
        match self { F64 | I64 => 8, F32 | I32 => 4, F16 | BF16 | I16 => 2, _ => 1 }
    }
    fn dl(self) -> DLDataType {
        use tessera_sys::dlpack::*;
        use DType::*;
        let code = match self {
            F64 | F32 | F16 => kDLFloat, BF16 => kDLBfloat, I64 | I32 | I16 | I8 => kDLInt, U8 => kDLUInt,
            Bool => kDLBool, F8E4M3 => 10, F8E5M2 => 12,
        };
        DLDataType { code, bits: (self.size() * 8) as u8, lanes: 1 }
    }
}

/// A Rust type with a Tessera dtype; its memory layout is the element's.
pub trait Element: Copy + Send + Sync + 'static {
    const DTYPE: DType;
}
macro_rules! element { ($($t:ty => $d:ident),*) => { $(impl Element for $t { const DTYPE: DType = DType::$d; })* } }
element!(f64 => F64, f32 => F32, i64 => I64, i32 => I32, i16 => I16, i8 => I8, u8 => U8, bool => Bool);

/// bfloat16 as its bit pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct Bf16(pub u16);
impl Bf16 {
    /// Rounds to nearest even (NaN stays NaN).
    pub fn from_f32(x: f32) -> Self {
        if x.is_nan() {
            return Bf16(0x7FC0);
        }
        let u = x.to_bits();
        Bf16(((u + 0x7FFF + ((u >> 16) & 1)) >> 16) as u16)
    }
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}
impl Element for Bf16 {
    const DTYPE: DType = DType::BF16;
}

// ---- context, plugins, devices ----------------------------------------------------

/// Owns the loaded plugins and their devices (`tessera_context_t`).
/// Dropping it shuts the plugins down; lifetimes guarantee nothing of it is
/// alive then.
pub struct Context {
    ptr: NonNull<sys::tessera_context_t>,
}
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

/// One candidate plugin file (`tessera_plugin_info_t`, strings copied).
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub path: String,
    pub name: String,
    pub kind: String,
    /// "loaded", "load error", ... (`tessera_plugin_state_name`).
    pub state: String,
    pub device_count: u32,
    /// Why it is not loaded or has no device; "" when none.
    pub reason: String,
    pub targets: Vec<String>,
}

/// `tessera_device_info_t`, strings copied.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub plugin: String,
    pub name: String,
    pub architecture: String,
    pub features: String,
    pub memory_bytes: u64,
    pub compute_units: u32,
    pub ordinal: u32,
    /// `tessera_device_kind_t` (1 = CPU, 2 = CUDA, ...).
    pub kind: i32,
}

/// A device, borrowed from its context.
#[derive(Clone)]
pub struct Device<'c> {
    ptr: *mut sys::tessera_device_t,
    info: DeviceInfo,
    _ctx: PhantomData<&'c Context>,
}
unsafe impl Send for Device<'_> {}
unsafe impl Sync for Device<'_> {}

impl Device<'_> {
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }
}

impl Context {
    /// A context with the default plugin search (docs/abi.md).
    pub fn new() -> Result<Self> {
        Self::with_plugin_path(None, 0)
    }

    /// plugin_path: colon-separated folders searched first; flags:
    /// `sys::TESSERA_CONTEXT_FLAG_*` bits.
    pub fn with_plugin_path(plugin_path: Option<&str>, flags: u32) -> Result<Self> {
        let path = plugin_path.map(c_string).transpose()?;
        let opts = sys::tessera_context_options_t {
            struct_size: sys::TESSERA_CONTEXT_OPTIONS_STRUCT_SIZE,
            plugin_path: path.as_ref().map_or(ptr::null(), |p| p.as_ptr()),
            flags,
            ..Default::default()
        };
        let mut out = ptr::null_mut();
        check(unsafe { sys::tessera_context_create(&opts, &mut out) })?;
        Ok(Context { ptr: NonNull::new(out).expect("context") })
    }

    pub fn as_ptr(&self) -> *mut sys::tessera_context_t {
        self.ptr.as_ptr()
    }

    /// Every candidate plugin, loaded or not, in discovery order.
    pub fn plugins(&self) -> Result<Vec<PluginInfo>> {
        let n = unsafe { sys::tessera_plugin_count(self.as_ptr()) };
        (0..n)
            .map(|i| unsafe {
                let mut info = sys::tessera_plugin_info_t { struct_size: sys::TESSERA_PLUGIN_INFO_STRUCT_SIZE, ..Default::default() };
                check(sys::tessera_plugin_get_info(self.as_ptr(), i, &mut info))?;
                Ok(PluginInfo {
                    path: cstr(info.path),
                    name: cstr(info.name),
                    kind: cstr(info.kind),
                    state: cstr(sys::tessera_plugin_state_name(info.state)),
                    device_count: info.device_count,
                    reason: cstr(info.reason),
                    targets: cstr(info.targets).split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
                })
            })
            .collect()
    }

    /// Devices of all loaded plugins, in plugin order.
    pub fn devices(&self) -> Result<Vec<Device<'_>>> {
        let n = unsafe { sys::tessera_device_count(self.as_ptr()) };
        (0..n)
            .map(|i| unsafe {
                let mut d = ptr::null_mut();
                check(sys::tessera_context_get_device(self.as_ptr(), i, &mut d))?;
                let mut info = sys::tessera_device_info_t { struct_size: sys::TESSERA_DEVICE_INFO_STRUCT_SIZE, ..Default::default() };
                check(sys::tessera_device_get_info(d, &mut info))?;
                Ok(Device {
                    ptr: d,
                    info: DeviceInfo {
                        plugin: cstr(info.plugin),
                        name: cstr(info.name),
                        architecture: cstr(info.architecture),
                        features: cstr(info.features),
                        memory_bytes: info.memory_bytes,
                        compute_units: info.compute_units,
                        ordinal: info.ordinal,
                        kind: info.kind,
                    },
                    _ctx: PhantomData,
                })
            })
            .collect()
    }

    /// The first device of plugin `plugin`. Errors: NoDevice (with the
    /// plugin's reason), NotFound (no such plugin).
    pub fn device(&self, plugin: &str) -> Result<Device<'_>> {
        if let Some(d) = self.devices()?.into_iter().find(|d| d.info.plugin == plugin) {
            return Ok(d);
        }
        match self.plugins()?.into_iter().find(|p| p.name == plugin) {
            Some(p) => Err(Error::new(StatusCode::NoDevice, format!("plugin '{plugin}' has no device ({}; {})", p.state, p.reason))),
            None => Err(Error::new(StatusCode::NotFound, format!("no plugin named '{plugin}'"))),
        }
    }

    /// Compiles .tsr text for `target` (see [`Context::compile_bytes`]).
    pub fn compile<'c>(&'c self, source: &str, target: &Device<'c>, options: &CompileOptions) -> Result<Module<'c>> {
        self.compile_bytes(source.as_bytes(), "tessera-ir", target, options)
    }

    /// Compiles `source` in `format` ("tessera-ir" or "onnx") for a device
    /// of this context. Errors: InvalidIr / ShapeMismatch (located),
    /// Unsupported, NotFound, InvalidArgument.
    pub fn compile_bytes<'c>(&'c self, source: &[u8], format: &str, target: &Device<'c>, options: &CompileOptions) -> Result<Module<'c>> {
        let fmt = c_string(format)?;
        let entry = options.entry.as_deref().map(c_string).transpose()?;
        let bind = options.bind.as_deref().map(c_string).transpose()?;
        let name = options.source_name.as_deref().map(c_string).transpose()?;
        let dump = options.dump.as_deref().map(c_string).transpose()?;
        let opts = sys::tessera_compile_options_t {
            struct_size: sys::TESSERA_COMPILE_OPTIONS_STRUCT_SIZE,
            entry: entry.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            source_name: name.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            opt_level: options.opt_level.unwrap_or(2),
            dump: dump.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            bind: bind.as_ref().map_or(ptr::null(), |s| s.as_ptr()),
            ..Default::default()
        };
        let tgt = sys::tessera_compile_target_t {
            struct_size: sys::TESSERA_COMPILE_TARGET_STRUCT_SIZE,
            device: target.ptr,
            description: ptr::null(),
        };
        let mut out = ptr::null_mut();
        check(unsafe {
            sys::tessera_compile(self.as_ptr(), source.as_ptr() as *const c_void, source.len(), fmt.as_ptr(), &opts, &tgt, &mut out)
        })?;
        unsafe { Module::wrap(out) }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // Nothing borrowed from the context can be alive here (lifetimes),
        // except DLPack memory exported with Tensor::to_dlpack and still held
        // by a consumer: then destroy is refused (BUSY) and the context leaks.
        let _ = check(unsafe { sys::tessera_context_destroy(self.as_ptr()) });
    }
}

// ---- compile ------------------------------------------------------------------

/// Options of `tessera_compile` (all optional).
#[derive(Debug, Clone, Default)]
pub struct CompileOptions {
    /// Function to compile; default "main", else the first.
    pub entry: Option<String>,
    /// Symbols fixed at compile time, "H=8,D=64".
    pub bind: Option<String>,
    /// 0..=3 (default 2).
    pub opt_level: Option<u32>,
    /// Stages to dump ("graph,schedule"); the text goes to no callback here.
    pub dump: Option<String>,
    /// File name used in diagnostics.
    pub source_name: Option<String>,
}

/// An input or output of a module: name, dtype, dims (`Ok(size)` static,
/// `Err(symbol)` symbolic).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub dtype: Option<DType>,
    pub dims: Vec<std::result::Result<i64, String>>,
}

/// A compiled program (`tessera_module_t`). `run` is thread-safe.
pub struct Module<'c> {
    ptr: NonNull<sys::tessera_module_t>,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    _ctx: PhantomData<&'c Context>,
}
unsafe impl Send for Module<'_> {}
unsafe impl Sync for Module<'_> {}

type GetInfo = unsafe extern "C" fn(*const sys::tessera_module_t, usize, *mut sys::tessera_value_info_t) -> *mut sys::tessera_status_t;

unsafe fn value_infos(m: *mut sys::tessera_module_t, n: usize, f: GetInfo) -> Result<Vec<ValueInfo>> {
    (0..n)
        .map(|i| {
            let mut v = sys::tessera_value_info_t { struct_size: sys::TESSERA_VALUE_INFO_STRUCT_SIZE, ..Default::default() };
            check(f(m, i, &mut v))?;
            let dims = (0..v.rank as usize)
                .map(|j| {
                    let d = *v.dims.add(j);
                    if d.size >= 0 { Ok(d.size) } else { Err(cstr(d.symbol)) }
                })
                .collect();
            Ok(ValueInfo { name: cstr(v.name), dtype: DType::from_raw(v.dtype), dims })
        })
        .collect()
}

impl<'c> Module<'c> {
    unsafe fn wrap(p: *mut sys::tessera_module_t) -> Result<Self> {
        let inputs = value_infos(p, sys::tessera_module_input_count(p), sys::tessera_module_get_input);
        let outputs = value_infos(p, sys::tessera_module_output_count(p), sys::tessera_module_get_output);
        let (inputs, outputs) = match (inputs, outputs) {
            (Ok(i), Ok(o)) => (i, o),
            (Err(e), _) | (_, Err(e)) => {
                sys::tessera_module_destroy(p);
                return Err(e);
            }
        };
        Ok(Module { ptr: NonNull::new(p).expect("module"), inputs, outputs, _ctx: PhantomData })
    }

    pub fn inputs(&self) -> &[ValueInfo] {
        &self.inputs
    }
    pub fn outputs(&self) -> &[ValueInfo] {
        &self.outputs
    }
    pub fn as_ptr(&self) -> *mut sys::tessera_module_t {
        self.ptr.as_ptr()
    }

    /// Runs the module: one input per parameter (dtypes must match; symbolic
    /// dims are bound from the shapes); returns one owned tensor per output,
    /// on the module's device. Errors: InvalidArgument (count, dtype),
    /// ShapeMismatch (names the symbol), NoDevice (compile-only).
    pub fn run(&self, inputs: &[&Tensor<'_>]) -> Result<Vec<Tensor<'c>>> {
        const STACK: usize = 8;
        let n_out = self.outputs.len();
        let mut in_small = [ptr::null_mut::<sys::tessera_tensor_t>(); STACK];
        let mut in_vec = Vec::new();
        let ins: &mut [*mut sys::tessera_tensor_t] = if inputs.len() <= STACK {
            &mut in_small[..inputs.len()]
        } else {
            in_vec.resize(inputs.len(), ptr::null_mut());
            &mut in_vec
        };
        for (slot, t) in ins.iter_mut().zip(inputs) {
            *slot = t.ptr.as_ptr();
        }
        let mut outs: Vec<*mut sys::tessera_tensor_t> = vec![ptr::null_mut(); n_out];
        check(unsafe {
            sys::tessera_module_run(self.as_ptr(), ptr::null(), ins.len(), ins.as_ptr(), n_out, outs.as_mut_ptr())
        })?;
        Ok(outs.into_iter().map(|p| unsafe { Tensor::wrap(p) }).collect())
    }

    /// The module as bytes (`Context::load_module` reads them back).
    pub fn serialize(&self) -> Result<Vec<u8>> {
        let mut b = ptr::null_mut();
        check(unsafe { sys::tessera_module_serialize(self.as_ptr(), &mut b) })?;
        Ok(unsafe { blob_bytes(b) })
    }
}

impl Context {
    /// Loads bytes from `Module::serialize` for `target`.
    /// Errors: CorruptData, IncompatibleVersion, NotFound.
    pub fn load_module<'c>(&'c self, data: &[u8], target: &Device<'c>) -> Result<Module<'c>> {
        let tgt = sys::tessera_compile_target_t { struct_size: sys::TESSERA_COMPILE_TARGET_STRUCT_SIZE, device: target.ptr, description: ptr::null() };
        let mut out = ptr::null_mut();
        check(unsafe { sys::tessera_module_load(self.as_ptr(), data.as_ptr() as *const c_void, data.len(), &tgt, &mut out) })?;
        unsafe { Module::wrap(out) }
    }
}

impl Drop for Module<'_> {
    fn drop(&mut self) {
        unsafe { sys::tessera_module_destroy(self.as_ptr()) }
    }
}

// ---- tensors ------------------------------------------------------------------

/// An owned `tessera_tensor_t`: dtype + shape, dense row-major. `'a` bounds
/// what it may not outlive: its context, or the slice it views.
pub struct Tensor<'a> {
    ptr: NonNull<sys::tessera_tensor_t>,
    _life: PhantomData<&'a ()>,
}
unsafe impl Send for Tensor<'_> {}
unsafe impl Sync for Tensor<'_> {}

/// A small owned host tensor: row-major `data` with `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor<T> {
    pub shape: Vec<i64>,
    pub data: Vec<T>,
}

impl<T: Element> HostTensor<T> {
    /// Errors: InvalidArgument when data.len() != product(shape).
    pub fn new(shape: Vec<i64>, data: Vec<T>) -> Result<Self> {
        let n: i64 = shape.iter().product();
        if n < 0 || n as usize != data.len() {
            return Err(Error::new(StatusCode::InvalidArgument, format!("shape {shape:?} holds {n} elements, data has {}", data.len())));
        }
        Ok(HostTensor { shape, data })
    }

    /// Moves the tensor into an owned DLPack tensor (the consumer calls its
    /// deleter once, which drops the Vec).
    pub fn into_dlpack(self) -> *mut DLManagedTensor {
        struct Holder<T> {
            managed: DLManagedTensor,
            _data: Vec<T>,
            _shape: Vec<i64>,
        }
        unsafe extern "C" fn deleter<T>(m: *mut DLManagedTensor) {
            drop(Box::from_raw((*m).manager_ctx as *mut Holder<T>));
        }
        let HostTensor { mut shape, mut data } = self;
        let dl = DLTensor {
            data: data.as_mut_ptr() as *mut c_void,
            device: DLDevice { device_type: tessera_sys::dlpack::kDLCPU, device_id: 0 },
            ndim: shape.len() as i32,
            dtype: T::DTYPE.dl(),
            shape: shape.as_mut_ptr(),
            strides: ptr::null_mut(),
            byte_offset: 0,
        };
        let h = Box::into_raw(Box::new(Holder { managed: DLManagedTensor { dl_tensor: dl, manager_ctx: ptr::null_mut(), deleter: Some(deleter::<T>) }, _data: data, _shape: shape }));
        unsafe {
            (*h).managed.manager_ctx = h as *mut c_void;
            &mut (*h).managed
        }
    }
}

impl<'a> Tensor<'a> {
    unsafe fn wrap(p: *mut sys::tessera_tensor_t) -> Self {
        Tensor { ptr: NonNull::new(p).expect("tensor"), _life: PhantomData }
    }

    pub fn as_ptr(&self) -> *mut sys::tessera_tensor_t {
        self.ptr.as_ptr()
    }

    /// A new tensor on `device` holding a copy of `data` (row-major, `shape`).
    pub fn from_slice<T: Element>(device: &Device<'a>, shape: &[i64], data: &[T]) -> Result<Tensor<'a>> {
        check_len(shape, data.len())?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::tessera_tensor_create(device.ptr, T::DTYPE as i32, shape.len() as u32, shape.as_ptr(), &mut out) })?;
        let t = unsafe { Tensor::wrap(out) };
        if !data.is_empty() {
            check(unsafe { sys::tessera_tensor_copy_from_host(t.as_ptr(), data.as_ptr() as *const c_void, std::mem::size_of_val(data) as u64) })?;
        }
        Ok(t)
    }

    /// A zero-copy view of `data` (host memory) as a tensor of `shape`; it
    /// borrows both `ctx` and `data` for `'a`.
    pub fn view<T: Element>(ctx: &'a Context, shape: &[i64], data: &'a [T]) -> Result<Tensor<'a>> {
        check_len(shape, data.len())?;
        // The shape must live as long as the DLPack tensor: box it with the
        // managed struct; the deleter frees the box (the data is borrowed).
        struct Holder {
            managed: DLManagedTensor,
            shape: [i64; sys::TESSERA_MAX_RANK],
        }
        unsafe extern "C" fn deleter(m: *mut DLManagedTensor) {
            drop(Box::from_raw((*m).manager_ctx as *mut Holder));
        }
        if shape.len() > sys::TESSERA_MAX_RANK {
            return Err(Error::new(StatusCode::ResourceExhausted, "rank above 16"));
        }
        let mut h = Box::new(Holder {
            managed: DLManagedTensor {
                dl_tensor: DLTensor {
                    data: data.as_ptr() as *mut c_void,
                    device: DLDevice { device_type: tessera_sys::dlpack::kDLCPU, device_id: 0 },
                    ndim: shape.len() as i32,
                    dtype: T::DTYPE.dl(),
                    shape: ptr::null_mut(),
                    strides: ptr::null_mut(),
                    byte_offset: 0,
                },
                manager_ctx: ptr::null_mut(),
                deleter: Some(deleter),
            },
            shape: [0; sys::TESSERA_MAX_RANK],
        });
        h.shape[..shape.len()].copy_from_slice(shape);
        let raw = Box::into_raw(h);
        unsafe {
            (*raw).managed.dl_tensor.shape = (*raw).shape.as_mut_ptr();
            (*raw).managed.manager_ctx = raw as *mut c_void;
            let mut out = ptr::null_mut();
            let st = sys::tessera_tensor_from_dlpack(ctx.as_ptr(), &mut (*raw).managed, &mut out);
            if !st.is_null() {
                drop(Box::from_raw(raw)); // on failure the caller still owns it
                check(st)?;
            }
            Ok(Tensor::wrap(out))
        }
    }

    /// Moves an owned host tensor into Tessera without copying.
    pub fn from_host<T: Element>(ctx: &'a Context, host: HostTensor<T>) -> Result<Tensor<'a>> {
        unsafe { Tensor::from_dlpack(ctx, host.into_dlpack()) }
    }

    /// Imports a DLPack tensor without copying. `managed` is consumed either
    /// way: on success Tessera calls its deleter when the tensor drops, on
    /// failure this function calls it. Errors: Unsupported (dtype, strides).
    ///
    /// # Safety
    /// `managed` must be a valid DLManagedTensor whose memory lives until its
    /// deleter is called.
    pub unsafe fn from_dlpack(ctx: &'a Context, managed: *mut DLManagedTensor) -> Result<Tensor<'a>> {
        let mut out = ptr::null_mut();
        let st = sys::tessera_tensor_from_dlpack(ctx.as_ptr(), managed as *mut _, &mut out);
        if !st.is_null() {
            if let Some(d) = (*managed).deleter {
                d(managed);
            }
            check(st)?;
        }
        Ok(Tensor::wrap(out))
    }

    fn info(&self) -> sys::tessera_tensor_info_t {
        let mut i = sys::tessera_tensor_info_t { struct_size: sys::TESSERA_TENSOR_INFO_STRUCT_SIZE, ..Default::default() };
        check(unsafe { sys::tessera_tensor_get_info(self.as_ptr(), &mut i) }).expect("tensor info of a live tensor");
        i
    }

    pub fn dtype(&self) -> Option<DType> {
        DType::from_raw(self.info().dtype)
    }
    pub fn shape(&self) -> Vec<i64> {
        let i = self.info();
        unsafe { std::slice::from_raw_parts(i.shape, i.rank as usize).to_vec() }
    }
    pub fn nbytes(&self) -> u64 {
        self.info().size_bytes
    }

    fn check_dtype<T: Element>(&self) -> Result<sys::tessera_tensor_info_t> {
        let i = self.info();
        if DType::from_raw(i.dtype) != Some(T::DTYPE) {
            return Err(Error::new(StatusCode::InvalidArgument, format!("tensor is {:?}, asked for {:?}", DType::from_raw(i.dtype), T::DTYPE)));
        }
        Ok(i)
    }

    /// The elements in place (zero copy), for tensors in host memory.
    /// Errors: InvalidArgument (dtype), Unsupported (device memory).
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let i = self.check_dtype::<T>()?;
        if i.device_kind != sys::TESSERA_DEVICE_KIND_CPU {
            return Err(Error::new(StatusCode::Unsupported, "tensor is not in host memory; use to_host"));
        }
        let n = i.size_bytes as usize / std::mem::size_of::<T>();
        Ok(if n == 0 { &[] } else { unsafe { std::slice::from_raw_parts(i.data as *const T, n) } })
    }

    /// A copy into an owned host tensor (any device).
    pub fn to_host<T: Element + Default>(&self) -> Result<HostTensor<T>> {
        let i = self.check_dtype::<T>()?;
        let n = i.size_bytes as usize / std::mem::size_of::<T>();
        let mut data = vec![T::default(); n];
        if n > 0 {
            check(unsafe { sys::tessera_tensor_copy_to_host(self.as_ptr(), data.as_mut_ptr() as *mut c_void, i.size_bytes) })?;
        }
        Ok(HostTensor { shape: self.shape(), data })
    }

    /// Exports as DLPack (zero copy); the memory lives until the returned
    /// value is dropped or its raw pointer's deleter is called.
    pub fn to_dlpack(&self) -> Result<DlPack<'a>> {
        let mut m = ptr::null_mut();
        check(unsafe { sys::tessera_tensor_to_dlpack(self.as_ptr(), &mut m) })?;
        Ok(DlPack { ptr: m as *mut DLManagedTensor, _life: PhantomData })
    }
}

fn check_len(shape: &[i64], len: usize) -> Result<()> {
    let n: i64 = shape.iter().product();
    if shape.iter().any(|&d| d < 0) || n as usize != len {
        return Err(Error::new(StatusCode::InvalidArgument, format!("shape {shape:?} does not match {len} elements")));
    }
    Ok(())
}

impl Drop for Tensor<'_> {
    fn drop(&mut self) {
        unsafe { sys::tessera_tensor_free(self.as_ptr()) }
    }
}

/// An owned exported DLPack tensor; calls the deleter on drop.
pub struct DlPack<'a> {
    ptr: *mut DLManagedTensor,
    _life: PhantomData<&'a ()>,
}
impl DlPack<'_> {
    pub fn tensor(&self) -> &DLTensor {
        unsafe { &(*self.ptr).dl_tensor }
    }
    /// Gives up ownership: the receiver must call the deleter once.
    pub fn into_raw(self) -> *mut DLManagedTensor {
        let p = self.ptr;
        std::mem::forget(self);
        p
    }
}
impl Drop for DlPack<'_> {
    fn drop(&mut self) {
        unsafe {
            if let Some(d) = (*self.ptr).deleter {
                d(self.ptr)
            }
        }
    }
}

// ---- programs -------------------------------------------------------------------

/// A parsed, verified Graph IR program (`tessera_program_t`); immutable.
pub struct Program {
    ptr: NonNull<sys::tessera_program_t>,
}
unsafe impl Send for Program {}
unsafe impl Sync for Program {}

impl Program {
    /// Parses and verifies .tsr text. Errors: InvalidIr / ShapeMismatch, located.
    pub fn parse(text: &str, source_name: Option<&str>) -> Result<Program> {
        let name = source_name.map(c_string).transpose()?;
        let mut out = ptr::null_mut();
        check(unsafe { sys::tessera_program_parse(text.as_ptr() as *const c_char, text.len(), name.as_ref().map_or(ptr::null(), |n| n.as_ptr()), &mut out) })?;
        Ok(Program { ptr: NonNull::new(out).expect("program") })
    }

    /// The canonical text.
    pub fn text(&self) -> Result<String> {
        let mut b = ptr::null_mut();
        check(unsafe { sys::tessera_program_print(self.ptr.as_ptr(), &mut b) })?;
        Ok(unsafe { blob_string(b) })
    }

    /// Symbols of `entry` (None = "main"/first); `undetermined`: only those
    /// the parameter shapes do not fix.
    pub fn symbols(&self, entry: Option<&str>, undetermined: bool) -> Result<Vec<String>> {
        let e = entry.map(c_string).transpose()?;
        let mut b = ptr::null_mut();
        let which = if undetermined { sys::TESSERA_PROGRAM_SYMBOLS_UNDETERMINED } else { sys::TESSERA_PROGRAM_SYMBOLS_ALL };
        check(unsafe { sys::tessera_program_function_symbols(self.ptr.as_ptr(), e.as_ref().map_or(ptr::null(), |s| s.as_ptr()), which, &mut b) })?;
        Ok(unsafe { blob_string(b) }.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
    }

    /// Runs the float64 reference interpreter; `num_outputs` results, owned
    /// host tensors. Errors: InvalidArgument, ShapeMismatch, Unsupported.
    pub fn run_reference(&self, entry: Option<&str>, bind: Option<&str>, inputs: &[&Tensor<'_>], num_outputs: usize) -> Result<Vec<Tensor<'static>>> {
        let e = entry.map(c_string).transpose()?;
        let b = bind.map(c_string).transpose()?;
        let ins: Vec<*mut sys::tessera_tensor_t> = inputs.iter().map(|t| t.as_ptr()).collect();
        let mut outs = vec![ptr::null_mut(); num_outputs];
        check(unsafe {
            sys::tessera_program_run_reference(self.ptr.as_ptr(), e.as_ref().map_or(ptr::null(), |s| s.as_ptr()), b.as_ref().map_or(ptr::null(), |s| s.as_ptr()), ins.len(), ins.as_ptr(), num_outputs, outs.as_mut_ptr())
        })?;
        Ok(outs.into_iter().map(|p| unsafe { Tensor::wrap(p) }).collect())
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        unsafe { sys::tessera_program_destroy(self.ptr.as_ptr()) }
    }
}

/// (package version, ABI major, ABI minor) of the loaded libtessera.
pub fn version() -> Result<(String, u32, u32)> {
    let mut v = sys::tessera_version_info_t { struct_size: sys::TESSERA_VERSION_INFO_STRUCT_SIZE, ..Default::default() };
    check(unsafe { sys::tessera_get_version(&mut v) })?;
    Ok((unsafe { cstr(v.version) }, v.abi_major, v.abi_minor))
}
