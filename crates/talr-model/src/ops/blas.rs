//! f32 matrix products through OpenBLAS's `sgemm`, loaded at run time, with candle's own matmul
//! as the fallback.
//!
//! Why: on the 2-core AMD EPYC (Zen 1) machines this project runs on, candle's `gemm` crate
//! reached 19 GFLOPS on one core where OpenBLAS reached 36, and it leaves the weight-gradient and
//! attention shapes (576 or 64 rows) on one core, where OpenBLAS uses both (18.6 against 68.8
//! GFLOPS at 576×4096×1536). Training and prefill are almost all matrix products.
//!
//! The library is loaded, not linked, so a build needs no system BLAS: [`init`] takes
//! `TALR_BLAS` (a path to an OpenBLAS shared library, or `off`), else the pip-served
//! scipy-openblas32 wheel (fetched once into the talr cache). Without a library every product
//! stays on candle, which also serves every non-f32 dtype and every non-CPU device.

use anyhow::{bail, Context, Result};
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use std::ffi::c_int;
use std::path::Path;
use std::sync::OnceLock;

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

struct Blas {
    sgemm: Sgemm,
    /// What result files record, e.g. "OpenBLAS 0.3.34 … Zen MAX_THREADS=64 on 2 threads".
    config: String,
    /// Keeps the symbols valid for the life of the process.
    _library: libloading::Library,
}

static BLAS: OnceLock<Option<Blas>> = OnceLock::new();

/// Loads the OpenBLAS the environment names (see the module docs) once per process. A library
/// that cannot be fetched is a warning and candle's matmul is used; one named by `TALR_BLAS` that
/// cannot be loaded is an error, since the user asked for it.
pub fn init() -> Result<()> {
    if BLAS.get().is_some() {
        return Ok(());
    }
    let chosen = match std::env::var("TALR_BLAS").ok().filter(|v| !v.is_empty()) {
        Some(v) if v.eq_ignore_ascii_case("off") => None,
        Some(path) => Some(load(Path::new(&path)).with_context(|| format!("TALR_BLAS={path}"))?),
        None => match talr_assets::openblas_for_this_platform().map(talr_assets::fetch) {
            Some(Ok(path)) => match load(&path) {
                Ok(blas) => Some(blas),
                Err(e) => {
                    eprintln!("warning: {e:#}; matrix products stay on candle's gemm");
                    None
                }
            },
            Some(Err(e)) => {
                eprintln!(
                    "warning: OpenBLAS not fetched ({e:#}); matrix products stay on candle's \
                     gemm (set TALR_BLAS to a libopenblas.so to use another)"
                );
                None
            }
            None => None,
        },
    };
    let _ = BLAS.set(chosen);
    Ok(())
}

/// Uses the OpenBLAS at `path` for this process's products, unless a library (or none) was
/// already chosen; says whether `path` is the one in use.
pub fn use_library(path: &Path) -> Result<bool> {
    let blas = load(path)?;
    Ok(BLAS.set(Some(blas)).is_ok())
}

/// Loads `path` and checks that it multiplies correctly.
fn load(path: &Path) -> Result<Blas> {
    // OpenBLAS's worker threads by default spin for 2^28 cycles (~0.1 s) after each product,
    // holding both cores while candle's rayon threads run the elementwise ops in between. With
    // 2^4 they sleep at once: a training step (4 × 512 tokens, 2 cores) ran at 97 tok/s against
    // 78-80, with decoding and the products' results unchanged. OpenBLAS reads this at load.
    if std::env::var_os("OPENBLAS_THREAD_TIMEOUT").is_none() {
        std::env::set_var("OPENBLAS_THREAD_TIMEOUT", "4");
    }
    // SAFETY: loading runs the library's initialisers; OpenBLAS's only set up its thread pool.
    let library = unsafe { libloading::Library::new(path) }
        .with_context(|| format!("loading {}", path.display()))?;
    let symbol = |names: &[&str]| -> Result<*const ()> {
        for name in names {
            // SAFETY: only the address is read here; its type is fixed by the caller.
            if let Ok(s) = unsafe { library.get::<*const ()>(name.as_bytes()) } {
                return Ok(*s);
            }
        }
        bail!("{} has none of {names:?}", path.display())
    };
    // scipy-openblas prefixes its symbols so it can live beside another BLAS in one process.
    let sgemm = symbol(&["cblas_sgemm", "scipy_cblas_sgemm"])?;
    let config = symbol(&["openblas_get_config", "scipy_openblas_get_config"])?;
    let threads = symbol(&["openblas_get_num_threads", "scipy_openblas_get_num_threads"])?;
    // SAFETY: all three are the CBLAS / OpenBLAS C signatures these names carry.
    let (sgemm, config, threads) = unsafe {
        let sgemm: Sgemm = std::mem::transmute(sgemm);
        let config: unsafe extern "C" fn() -> *const std::ffi::c_char = std::mem::transmute(config);
        let config = std::ffi::CStr::from_ptr(config())
            .to_string_lossy()
            .into_owned();
        let threads: unsafe extern "C" fn() -> c_int = std::mem::transmute(threads);
        (sgemm, config, threads())
    };
    let config = config.trim();
    let blas = Blas {
        sgemm,
        // The thread count is recorded because it changes training's rounding: two steps on 1
        // and on 2 threads gave the same first loss, gradient norms 4e-9 apart (relative), and
        // second mean NLLs 1e-6 apart; decoding matched.
        config: format!(
            "{}{config} on {}",
            if config.starts_with("OpenBLAS") {
                ""
            } else {
                "OpenBLAS "
            },
            crate::device::threads(threads as usize)
        ),
        _library: library,
    };
    multiplies_correctly(path, "sgemm", |a, b, c| {
        blas.gemm(false, false, 2, 2, 2, a, 2, b, 2, c);
        Ok(())
    })?;
    Ok(blas)
}

/// Checks a freshly loaded library on [[1, 2], [3, 4]] · [[5, 6], [7, 8]] = [[19, 22], [43, 50]]
/// (exact in f32 and in bf16); `gemm` multiplies two row-major 2×2 matrices.
pub(super) fn multiplies_correctly(
    path: &Path,
    what: &str,
    gemm: impl FnOnce(&[f32], &[f32], &mut [f32]) -> Result<()>,
) -> Result<()> {
    let mut c = [0f32; 4];
    gemm(&[1., 2., 3., 4.], &[5., 6., 7., 8.], &mut c)?;
    if c != [19., 22., 43., 50.] {
        bail!("{}: {what} returned {c:?} for a 2×2 check", path.display());
    }
    Ok(())
}

impl Blas {
    /// C (m × n, row-major, contiguous) = op(A) · op(B), with op a transpose when asked.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
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
    ) {
        let flag = |t: bool| if t { TRANS } else { NO_TRANS };
        // SAFETY: the layouts were checked by `Operand::of`: every element op(A), op(B) and C
        // address lies inside the given slices.
        unsafe {
            (self.sgemm)(
                ROW_MAJOR,
                flag(trans_a),
                flag(trans_b),
                m as c_int,
                n as c_int,
                k as c_int,
                1.0,
                a.as_ptr(),
                lda as c_int,
                b.as_ptr(),
                ldb as c_int,
                0.0,
                c.as_mut_ptr(),
                n as c_int,
            )
        }
    }
}

/// The loaded library's build, for result files; `None` when products run on candle.
pub fn active() -> Option<&'static str> {
    BLAS.get()?.as_ref().map(|b| b.config.as_str())
}

/// One operand of a batched product as sgemm reads it: each matrix row-major or transposed, the
/// batch at a fixed stride.
struct Operand {
    transposed: bool,
    leading: usize,
    batch_stride: usize,
}

impl Operand {
    /// How sgemm can read a (…, rows, cols) tensor with these strides in place, or `None` when
    /// it must be copied first.
    fn of(dims: &[usize], stride: &[usize]) -> Option<Operand> {
        let r = dims.len();
        let (rows, cols) = (dims[r - 2], dims[r - 1]);
        let (sr, sc) = (stride[r - 2], stride[r - 1]);
        let (transposed, leading) = if sc == 1 && sr >= cols.max(1) {
            (false, sr)
        } else if sr == 1 && sc >= rows.max(1) {
            (true, sc)
        } else {
            return None;
        };
        // The batch dims must flatten to one stride.
        let mut batch_stride = rows * cols;
        if r > 2 {
            batch_stride = stride[r - 3];
            for i in (0..r - 3).rev() {
                if dims[i] > 1 && stride[i] != stride[i + 1] * dims[i + 1] {
                    return None;
                }
            }
        }
        Some(Operand {
            transposed,
            leading,
            batch_stride,
        })
    }
}

/// a (…, m, k) · b (…, k, n) with equal batch dims, for f32 CPU tensors: in bf16 on oneDNN when
/// the process runs bf16 ([`crate::precision`]) and both m and n reach
/// [`crate::precision::BF16_MIN_DIM`], else on OpenBLAS when it is loaded, else candle's matmul.
/// Differentiable either way; each backward product chooses again by its own shape.
pub fn matmul(a: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if !super::use_cpu_kernel(&[a, b]) || a.rank() < 2 || b.rank() < 2 {
        return a.matmul(b);
    }
    let (m, n) = (a.dim(a.rank() - 2)?, b.dim(b.rank() - 1)?);
    let bf16 = crate::precision::bf16_active() && m.min(n) >= crate::precision::BF16_MIN_DIM;
    if !bf16 && active().is_none() {
        return a.matmul(b);
    }
    let readable = |t: &Tensor| Operand::of(t.dims(), t.stride()).is_some();
    let a = if readable(a) {
        a.clone()
    } else {
        a.contiguous()?
    };
    let b = if readable(b) {
        b.clone()
    } else {
        b.contiguous()?
    };
    a.apply_op2(&b, BlasMatmul { bf16 })
}

/// Where one product runs.
#[derive(Clone, Copy)]
enum Backend {
    F32(&'static Blas),
    Bf16(&'static super::onednn::OneDnn),
}

struct BlasMatmul {
    /// Multiply in bf16 on oneDNN rather than in f32 on OpenBLAS.
    bf16: bool,
}

impl CustomOp2 for BlasMatmul {
    fn name(&self) -> &'static str {
        "talr-blas-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let unavailable = |what: &str| candle_core::Error::Msg(format!("{what} is not loaded"));
        let backend = if self.bf16 {
            Backend::Bf16(super::onednn::get().map_err(|_| unavailable("oneDNN"))?)
        } else {
            Backend::F32(
                BLAS.get()
                    .and_then(|b| b.as_ref())
                    .ok_or_else(|| unavailable("OpenBLAS"))?,
            )
        };
        let (da, db) = (l1.dims(), l2.dims());
        let r = da.len();
        if db.len() != r || da[..r - 2] != db[..r - 2] || da[r - 1] != db[r - 2] {
            candle_core::bail!("blas matmul: shapes {da:?} and {db:?} do not multiply");
        }
        let (m, k, n) = (da[r - 2], da[r - 1], db[r - 1]);
        let batch: usize = da[..r - 2].iter().product();
        let (a, b) = match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => (a.as_slice(), b.as_slice()),
            _ => candle_core::bail!("blas matmul: expected f32 storage"),
        };
        let view = |l: &Layout| {
            Operand::of(l.dims(), l.stride())
                .ok_or_else(|| candle_core::Error::Msg("blas matmul: unsupported layout".into()))
        };
        let (oa, ob) = (view(l1)?, view(l2)?);
        let mut c = vec![0f32; batch * m * n];
        // An empty product (k = 0) is the zeros `c` starts as.
        if m * n * k > 0 {
            for (i, out) in c.chunks_exact_mut(m * n).enumerate() {
                let a = &a[l1.start_offset() + i * oa.batch_stride..];
                let b = &b[l2.start_offset() + i * ob.batch_stride..];
                let (ta, tb, lda, ldb) = (oa.transposed, ob.transposed, oa.leading, ob.leading);
                match backend {
                    Backend::F32(blas) => blas.gemm(ta, tb, m, n, k, a, lda, b, ldb, out),
                    Backend::Bf16(dnnl) => dnnl
                        .gemm(ta, tb, m, n, k, a, lda, b, ldb, out)
                        .map_err(|e| candle_core::Error::Msg(format!("{e:#}")))?,
                }
            }
        }
        let mut dims = da[..r - 2].to_vec();
        dims.extend([m, n]);
        Ok((CpuStorage::F32(c), Shape::from(dims)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (a, b) = (a.detach(), b.detach());
        Ok((Some(matmul(grad, &b.t()?)?), Some(matmul(&a.t()?, grad)?)))
    }
}
