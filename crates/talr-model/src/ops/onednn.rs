//! bf16 matrix products (f32 in and out, bf16 operands, f32 accumulation) through oneDNN's
//! matmul primitive, loaded at run time like OpenBLAS ([`super::blas`]).
//!
//! Why oneDNN: it is what PyTorch's bf16 CPU path runs on, and it picks AMX tiles or AVX512-BF16
//! dot products (`vdpbf16ps`) by itself. On a 2-core AMD EPYC with AVX512-BF16, at SmolLM2's
//! linear shapes with 2048 rows, it reached 355-400 GFLOP/s with operand rounding included where
//! OpenBLAS's sgemm reached 167-203 (`benches/gemm.rs`). Its implicit f32→bf16 mode
//! (`fpmath_mode`) picked its f32 kernels (`brg:avx512_core`) on AVX512-BF16 in oneDNN 2.6,
//! so operands are rounded here.
//!
//! The library is Debian's and Ubuntu's `libdnnl2` (oneDNN 2.x): `TALR_DNNL` names another
//! `libdnnl.so.2`, or `off`. oneDNN's own `ONEDNN_MAX_CPU_ISA` (e.g. `AVX512_CORE_BF16`) caps the
//! instruction set it may use, which is how a test forces the AVX512-BF16 path on an AMX machine.

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

type Status = c_int;
type Handle = *mut c_void;

const ENGINE_CPU: c_int = 1;
const DATA_BF16: c_int = 2;
const DATA_F32: c_int = 3;
const ARG_SRC: c_int = 1;
const ARG_WEIGHTS: c_int = 33;
const ARG_DST: c_int = 17;
const QUERY_IMPL_INFO_STR: c_int = 8;
const STREAM_IN_ORDER: u32 = 1;

/// oneDNN 2.x's memory descriptor (696 bytes in 2.6) and matmul descriptor (2800 bytes) are C
/// structs the library fills in and reads back; talr never looks inside, so each is an aligned
/// buffer with room to spare.
#[repr(C, align(64))]
struct MemoryDesc([u8; 2048]);
#[repr(C, align(64))]
struct MatmulDesc([u8; 8192]);

#[repr(C)]
struct ExecArg {
    arg: c_int,
    memory: Handle,
}

#[repr(C)]
struct Version {
    major: c_int,
    minor: c_int,
    patch: c_int,
    hash: *const c_char,
}

/// The entry points used, with oneDNN 2.x's C signatures (`dnnl.h`).
struct Api {
    engine_create: unsafe extern "C" fn(*mut Handle, c_int, usize) -> Status,
    stream_create: unsafe extern "C" fn(*mut Handle, Handle, u32) -> Status,
    memory_desc_init_by_strides:
        unsafe extern "C" fn(*mut MemoryDesc, c_int, *const i64, c_int, *const i64) -> Status,
    matmul_desc_init: unsafe extern "C" fn(
        *mut MatmulDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
    ) -> Status,
    primitive_desc_create: unsafe extern "C" fn(
        *mut Handle,
        *const c_void,
        *const c_void,
        Handle,
        *const c_void,
    ) -> Status,
    primitive_desc_query: unsafe extern "C" fn(Handle, c_int, c_int, *mut c_void) -> Status,
    primitive_desc_destroy: unsafe extern "C" fn(Handle) -> Status,
    primitive_create: unsafe extern "C" fn(*mut Handle, Handle) -> Status,
    memory_create: unsafe extern "C" fn(*mut Handle, *const MemoryDesc, Handle, Handle) -> Status,
    memory_set_data_handle: unsafe extern "C" fn(Handle, Handle) -> Status,
    primitive_execute: unsafe extern "C" fn(Handle, Handle, c_int, *const ExecArg) -> Status,
    stream_wait: unsafe extern "C" fn(Handle) -> Status,
    version: unsafe extern "C" fn() -> *const Version,
}

/// One product shape's primitive and its three memory objects, whose buffers are set per call.
struct Product {
    primitive: Handle,
    memories: [Handle; 3],
}

/// (m, n, k, A transposed, B transposed): all a product's primitive depends on, since operands
/// are converted into contiguous bf16 buffers.
type ShapeKey = (usize, usize, usize, bool, bool);

struct State {
    engine: Handle,
    stream: Handle,
    products: HashMap<ShapeKey, Product>,
}

pub struct OneDnn {
    api: Api,
    state: Mutex<State>,
    /// What result files record, e.g. "oneDNN 2.6.3 brg:avx512_core_bf16".
    config: String,
    /// Whether the CPU multiplies bf16 in hardware (AMX or AVX512-BF16); oneDNN otherwise
    /// emulates it, slower than f32.
    native: bool,
    _library: libloading::Library,
}

// SAFETY: oneDNN's engine, stream and primitives may be used from any thread; every use goes
// through `state`'s mutex, so no two threads touch them at once.
unsafe impl Send for OneDnn {}
unsafe impl Sync for OneDnn {}

static ONEDNN: OnceLock<std::result::Result<OneDnn, String>> = OnceLock::new();

/// The process's oneDNN, loaded on first use from `TALR_DNNL` or the system's `libdnnl.so.2`;
/// the error says why there is none.
pub fn get() -> std::result::Result<&'static OneDnn, &'static str> {
    ONEDNN
        .get_or_init(|| {
            // Debian's oneDNN runs on OpenMP, whose threads by default spin for a while after
            // each product, taking the cores from the OpenBLAS and rayon threads of the ops in
            // between: a bf16 training step ran at 83 tok/s that way, 112 with them sleeping.
            // OpenMP reads this when the library loads.
            if std::env::var_os("OMP_WAIT_POLICY").is_none() {
                std::env::set_var("OMP_WAIT_POLICY", "PASSIVE");
            }
            let named = std::env::var("TALR_DNNL").ok().filter(|v| !v.is_empty());
            match named.as_deref() {
                Some(v) if v.eq_ignore_ascii_case("off") => Err("TALR_DNNL=off".into()),
                Some(path) => load(Path::new(path)).map_err(|e| format!("TALR_DNNL={path}: {e:#}")),
                None => load(Path::new("libdnnl.so.2")).map_err(|e| {
                    format!(
                        "{e:#} (install oneDNN 2.x: `apt-get install libdnnl2` on Debian or \
                         Ubuntu, or set TALR_DNNL to a libdnnl.so.2)"
                    )
                }),
            }
        })
        .as_ref()
        .map_err(String::as_str)
}

fn check(status: Status, what: &str) -> Result<()> {
    if status != 0 {
        let meaning = match status {
            1 => "out of memory",
            2 => "invalid arguments",
            3 => "unimplemented",
            _ => "error",
        };
        bail!("oneDNN {what}: status {status} ({meaning})");
    }
    Ok(())
}

fn load(path: &Path) -> Result<OneDnn> {
    // SAFETY: loading runs the library's initialisers, which only set up its dispatch tables.
    let library = unsafe { libloading::Library::new(path) }
        .with_context(|| format!("loading {}", path.display()))?;
    macro_rules! symbol {
        ($name:literal) => {
            // SAFETY: the field's type is the C signature of the symbol of that name in oneDNN
            // 2.x, whose major version is checked below before anything else is called.
            unsafe {
                *library
                    .get(concat!("dnnl_", $name).as_bytes())
                    .with_context(|| format!("{}: no dnnl_{}", path.display(), $name))?
            }
        };
    }
    let api = Api {
        engine_create: symbol!("engine_create"),
        stream_create: symbol!("stream_create"),
        memory_desc_init_by_strides: symbol!("memory_desc_init_by_strides"),
        matmul_desc_init: symbol!("matmul_desc_init"),
        primitive_desc_create: symbol!("primitive_desc_create"),
        primitive_desc_query: symbol!("primitive_desc_query"),
        primitive_desc_destroy: symbol!("primitive_desc_destroy"),
        primitive_create: symbol!("primitive_create"),
        memory_create: symbol!("memory_create"),
        memory_set_data_handle: symbol!("memory_set_data_handle"),
        primitive_execute: symbol!("primitive_execute"),
        stream_wait: symbol!("stream_wait"),
        version: symbol!("version"),
    };
    // SAFETY: `dnnl_version` returns a pointer to a static struct.
    let (major, minor, patch) = unsafe {
        let v = &*(api.version)();
        (v.major, v.minor, v.patch)
    };
    if major != 2 {
        bail!(
            "{} is oneDNN {major}.{minor}.{patch}; talr calls the 2.x C interface",
            path.display()
        );
    }
    let (mut engine, mut stream) = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: out-pointers to locals; the engine outlives the stream (both live for the process).
    unsafe {
        check((api.engine_create)(&mut engine, ENGINE_CPU, 0), "engine")?;
        check(
            (api.stream_create)(&mut stream, engine, STREAM_IN_ORDER),
            "stream",
        )?;
    }
    let mut dnnl = OneDnn {
        api,
        state: Mutex::new(State {
            engine,
            stream,
            products: HashMap::new(),
        }),
        config: String::new(),
        native: false,
        _library: library,
    };
    let implementation = dnnl.implementation(256, 256, 256)?;
    dnnl.native = implementation.contains("bf16") || implementation.contains("amx");
    dnnl.config = format!("oneDNN {major}.{minor}.{patch} {implementation}");
    super::blas::multiplies_correctly(path, "a bf16 matmul", |a, b, c| {
        dnnl.gemm(false, false, 2, 2, 2, a, 2, b, 2, c)
    })?;
    Ok(dnnl)
}

impl OneDnn {
    pub fn config(&self) -> &str {
        &self.config
    }

    /// Whether bf16 products run on bf16 hardware (AMX or AVX512-BF16).
    pub fn native(&self) -> bool {
        self.native
    }

    /// The kernel oneDNN picks for an m×k · k×n bf16 product, e.g. "brg:avx512_core_bf16".
    fn implementation(&self, m: usize, n: usize, k: usize) -> Result<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let pd = self.primitive_desc(&state, &self.operand_descs((m, n, k, false, false))?)?;
        let mut text: *const c_char = std::ptr::null();
        // SAFETY: the query writes a pointer to a string owned by `pd`, copied before `pd` goes.
        let info = unsafe {
            let status = (self.api.primitive_desc_query)(
                pd,
                QUERY_IMPL_INFO_STR,
                0,
                (&mut text as *mut *const c_char).cast(),
            );
            let info = (status == 0 && !text.is_null())
                .then(|| CStr::from_ptr(text).to_string_lossy().into_owned());
            (self.api.primitive_desc_destroy)(pd);
            info
        };
        info.context("oneDNN: querying the matmul implementation")
    }

    /// A rows × cols matrix stored contiguously, row-major or (transposed) column-major.
    fn memory_desc(
        &self,
        rows: usize,
        cols: usize,
        transposed: bool,
        dtype: c_int,
    ) -> Result<Box<MemoryDesc>> {
        let mut dims = [0i64; 12];
        let mut strides = [0i64; 12];
        dims[..2].copy_from_slice(&[rows as i64, cols as i64]);
        strides[..2].copy_from_slice(&if transposed {
            [1, rows as i64]
        } else {
            [cols as i64, 1]
        });
        let mut md = Box::new(MemoryDesc([0; 2048]));
        // SAFETY: dims and strides hold 12 entries, as dnnl_dims_t does; md is large enough.
        let status = unsafe {
            (self.api.memory_desc_init_by_strides)(
                &mut *md,
                2,
                dims.as_ptr(),
                dtype,
                strides.as_ptr(),
            )
        };
        check(status, "memory descriptor")?;
        Ok(md)
    }

    /// A product's A, B and C: bf16 operands stored contiguously (row-major, or column-major
    /// when transposed) and an f32 row-major result.
    fn operand_descs(&self, key: ShapeKey) -> Result<[Box<MemoryDesc>; 3]> {
        let (m, n, k, trans_a, trans_b) = key;
        Ok([
            self.memory_desc(m, k, trans_a, DATA_BF16)?,
            self.memory_desc(k, n, trans_b, DATA_BF16)?,
            self.memory_desc(m, n, false, DATA_F32)?,
        ])
    }

    /// A matmul primitive descriptor for `descs` ([`Self::operand_descs`]).
    fn primitive_desc(&self, state: &State, descs: &[Box<MemoryDesc>; 3]) -> Result<Handle> {
        let [a, b, c] = descs;
        let mut op = Box::new(MatmulDesc([0; 8192]));
        let mut pd = std::ptr::null_mut();
        // SAFETY: every descriptor was initialised above; a null bias disables the bias term.
        unsafe {
            check(
                (self.api.matmul_desc_init)(&mut *op, &**a, &**b, std::ptr::null(), &**c),
                "matmul descriptor",
            )?;
            check(
                (self.api.primitive_desc_create)(
                    &mut pd,
                    (&*op as *const MatmulDesc).cast(),
                    std::ptr::null(),
                    state.engine,
                    std::ptr::null(),
                ),
                "matmul primitive descriptor",
            )?;
        }
        Ok(pd)
    }

    fn product<'a>(&self, state: &'a mut State, key: ShapeKey) -> Result<&'a Product> {
        if !state.products.contains_key(&key) {
            let descs = self.operand_descs(key)?;
            let pd = self.primitive_desc(state, &descs)?;
            let mut primitive = std::ptr::null_mut();
            let mut memories = [std::ptr::null_mut(); 3];
            // SAFETY: `pd` is valid until destroyed here; memories start without a buffer
            // (null), which `gemm` sets before every execution, and copy what they need from
            // their initialised descriptors.
            unsafe {
                let status = (self.api.primitive_create)(&mut primitive, pd);
                (self.api.primitive_desc_destroy)(pd);
                check(status, "matmul primitive")?;
                for (memory, md) in memories.iter_mut().zip(&descs) {
                    check(
                        (self.api.memory_create)(memory, &**md, state.engine, std::ptr::null_mut()),
                        "memory",
                    )?;
                }
            }
            state.products.insert(
                key,
                Product {
                    primitive,
                    memories,
                },
            );
        }
        Ok(&state.products[&key])
    }

    /// C (m × n, row-major, contiguous) = op(A) · op(B) with both operands rounded to bf16 and
    /// products summed in f32; the arguments are those of OpenBLAS's sgemm ([`super::blas`]).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        trans_a: bool,
        trans_b: bool,
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        lda: usize,
        b: &[f32],
        ldb: usize,
        c: &mut [f32],
    ) -> Result<()> {
        // Stored shapes: op(A) = Aᵀ keeps A as k rows of m.
        let (mut a16, mut b16) = (
            to_bf16(a, if trans_a { (k, m) } else { (m, k) }, lda),
            to_bf16(b, if trans_b { (n, k) } else { (k, n) }, ldb),
        );
        assert!(c.len() >= m * n, "gemm: C holds {} of {m}×{n}", c.len());
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let stream = state.stream;
        let product = self.product(&mut state, (m, n, k, trans_a, trans_b))?;
        let buffers: [Handle; 3] = [
            a16.as_mut_ptr().cast(),
            b16.as_mut_ptr().cast(),
            c.as_mut_ptr().cast(),
        ];
        let [src, weights, dst] = product.memories;
        let args = [(ARG_SRC, src), (ARG_WEIGHTS, weights), (ARG_DST, dst)]
            .map(|(arg, memory)| ExecArg { arg, memory });
        // SAFETY: the buffers hold exactly the shapes the memories were created with, and stay
        // alive (borrowed) until the stream has finished.
        unsafe {
            for (memory, buffer) in product.memories.iter().zip(buffers) {
                check((self.api.memory_set_data_handle)(*memory, buffer), "buffer")?;
            }
            check(
                (self.api.primitive_execute)(product.primitive, stream, 3, args.as_ptr()),
                "matmul",
            )?;
            check((self.api.stream_wait)(stream), "stream wait")?;
        }
        Ok(())
    }
}

/// `rows` rows of `cols` f32 values, `ld` apart, rounded to nearest-even bf16 (as the bits
/// oneDNN reads) and packed contiguously.
fn to_bf16(src: &[f32], (rows, cols): (usize, usize), ld: usize) -> Vec<u16> {
    let mut out = vec![0u16; rows * cols];
    if cols == 0 {
        return out;
    }
    // Whole rows per task, about 16k values each.
    let rows_per_task = (16384 / cols).max(1);
    out.par_chunks_mut(rows_per_task * cols)
        .enumerate()
        .for_each(|(chunk, dst)| {
            let first_row = chunk * rows_per_task;
            for (r, row) in dst.chunks_exact_mut(cols).enumerate() {
                let start = (first_row + r) * ld;
                round_row(&src[start..start + cols], row);
            }
        });
    out
}

/// f32 → bf16 bits, rounding to nearest even: 16 values per instruction where the CPU has
/// AVX512-BF16 (about ten times the scalar loop, which made rounding a weight matrix cost as
/// much as a 32-row product), else one at a time.
fn round_row(src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512bf16") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { round_row_avx512(src, dst) };
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = half::bf16::from_f32(*s).to_bits();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
unsafe fn round_row_avx512(src: &[f32], dst: &mut [u16]) {
    use std::arch::x86_64::{
        __m256bh, __m256i, _mm256_storeu_si256, _mm512_cvtneps_pbh, _mm512_loadu_ps,
    };
    let n = src.len().min(dst.len());
    let whole = n / 16 * 16;
    for i in (0..whole).step_by(16) {
        // SAFETY: i + 16 <= n, within both slices; unaligned loads and stores.
        unsafe {
            let rounded = _mm512_cvtneps_pbh(_mm512_loadu_ps(src.as_ptr().add(i)));
            _mm256_storeu_si256(
                dst.as_mut_ptr().add(i).cast(),
                std::mem::transmute::<__m256bh, __m256i>(rounded),
            );
        }
    }
    for i in whole..n {
        dst[i] = half::bf16::from_f32(src[i]).to_bits();
    }
}
