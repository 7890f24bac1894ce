//! Choosing where tensors live from a user's `--device`: `cpu`, `cuda`, `cuda:N`, or `auto`.
//!
//! CUDA needs a build with the `cuda` feature (`cargo build --release --features cuda`, which
//! needs the CUDA toolkit); the default build is CPU-only so it builds everywhere. `auto` takes
//! the first GPU when the build has CUDA and the machine has a GPU, else the CPU, so one command
//! line serves both kinds of machine.

use anyhow::{bail, Context, Result};
use candle_core::{Device, DeviceLocation};

/// What the user asked for, parsed before anything is loaded so a typo fails at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
    Auto,
}

impl std::str::FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let spec = s.trim().to_ascii_lowercase();
        match spec.as_str() {
            "cpu" => return Ok(Self::Cpu),
            "auto" => return Ok(Self::Auto),
            "cuda" | "gpu" => return Ok(Self::Cuda(0)),
            _ => {}
        }
        if let Some(n) = spec.strip_prefix("cuda:") {
            let ordinal = n
                .parse()
                .with_context(|| format!("{s:?}: the GPU index after `cuda:` must be a number"))?;
            return Ok(Self::Cuda(ordinal));
        }
        bail!("{s:?} is not a device; use cpu, cuda, cuda:N (N = GPU index) or auto")
    }
}

impl DeviceSpec {
    /// Opens the device. Asking for CUDA from a CPU-only build, or for a GPU the machine lacks,
    /// is an error that says which; `auto` falls back to the CPU instead.
    pub fn open(self) -> Result<Device> {
        match self {
            Self::Cpu => {
                crate::ops::blas::init()?;
                Ok(Device::Cpu)
            }
            Self::Cuda(ordinal) => {
                if !candle_core::utils::cuda_is_available() {
                    bail!("this build has no CUDA support; rebuild with `--features cuda` (needs the CUDA toolkit), or use --device cpu");
                }
                Device::new_cuda(ordinal).with_context(|| format!("opening CUDA device {ordinal}"))
            }
            Self::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(device) = Device::new_cuda(0) {
                        return Ok(device);
                    }
                }
                crate::ops::blas::init()?;
                Ok(Device::Cpu)
            }
        }
    }
}

/// "1 thread", "2 threads".
pub(crate) fn threads(n: usize) -> String {
    format!("{n} thread{}", if n == 1 { "" } else { "s" })
}

/// `cpu` (with the BLAS its products ran on and the thread counts) or `cuda:N`: how result files
/// record where a run ran (results from different devices, kernels or thread counts differ in
/// the last bits, so a comparison should know).
pub fn device_name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => {
            // candle's own kernels and talr's CPU ops split work over this many threads.
            let threads = threads(candle_core::utils::get_num_threads());
            let kernels: Vec<String> = crate::precision::bf16_kernel()
                .into_iter()
                .chain(crate::ops::blas::active().map(str::to_string))
                .chain([threads])
                .collect();
            format!("cpu ({})", kernels.join("; "))
        }
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_flags_parse_and_typos_name_the_accepted_forms() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!(" CUDA ".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        let err = "cdua".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("\"cdua\"") && err.contains("cuda:N"), "{err}");
        let err = format!("{:#}", "cuda:x".parse::<DeviceSpec>().unwrap_err());
        assert!(err.contains("GPU index"), "{err}");
    }

    #[test]
    fn a_cpu_build_refuses_cuda_and_auto_falls_back_to_the_cpu() {
        assert!(DeviceSpec::Auto.open().is_ok());
        let name = device_name(&DeviceSpec::Cpu.open().unwrap());
        // "cpu (N threads)", or "cpu (OpenBLAS … on N threads; N threads)" with the library.
        let threads = threads(candle_core::utils::get_num_threads());
        assert!(
            name.starts_with("cpu (") && name.ends_with(&format!("{threads})")),
            "{name}"
        );
        if !candle_core::utils::cuda_is_available() {
            assert!(DeviceSpec::Auto.open().unwrap().is_cpu());
            let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
