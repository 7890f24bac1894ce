//! Activation checkpointing for decoder blocks.
//!
//! A checkpointed block is one autograd node whose forward runs the block and keeps only its
//! input; its backward runs the block again with gradients on and backpropagates through that
//! local graph. candle's custom-op backward can only return gradients for the op's tensor
//! arguments, so the block's parameter gradients travel through a side channel (the sink) and
//! [`crate::LoadedModel::backward`] merges them into the returned gradient store.

use crate::config::DecoderConfig;
use crate::decoder::{block_forward, Block, BlockInputs};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, TensorId, Var};
use std::sync::{Arc, Mutex};

/// Gradients of parameters inside checkpointed blocks, by tensor id, awaiting collection.
#[derive(Default, Clone)]
pub struct GradSink(Arc<Mutex<Vec<(TensorId, Tensor)>>>);

impl GradSink {
    pub fn take(&self) -> Vec<(TensorId, Tensor)> {
        std::mem::take(&mut *self.0.lock().expect("grad sink lock"))
    }
}

pub(crate) fn checkpointed_block(
    cfg: &DecoderConfig,
    block: &Arc<Block>,
    x: &Tensor,
    inputs: &BlockInputs,
    sink: &GradSink,
) -> Result<Tensor> {
    // An input that carries no graph (frozen layers below) would hide the op from autograd;
    // such a block runs plainly, and the blocks above it can checkpoint.
    if !x.device().is_cpu() || !x.track_op() {
        return block_forward(cfg, block, x, inputs, None);
    }
    let op = CheckpointedBlock {
        cfg: cfg.clone(),
        block: block.clone(),
        x: x.detach(),
        inputs: inputs.detach(),
        sink: sink.clone(),
    };
    x.apply_op1(op)
}

struct CheckpointedBlock {
    cfg: DecoderConfig,
    block: Arc<Block>,
    x: Tensor,
    inputs: BlockInputs,
    sink: GradSink,
}

impl CheckpointedBlock {
    fn run(&self, x: &Tensor) -> Result<Tensor> {
        block_forward(&self.cfg, &self.block, x, &self.inputs, None)
    }
}

impl CustomOp1 for CheckpointedBlock {
    fn name(&self) -> &'static str {
        "talr-checkpointed-block"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        // The local graph this builds is dropped with `out`: only the input stays alive.
        let out = self.run(&self.x)?.detach();
        let shape = out.shape().clone();
        let storage = match out.dtype() {
            DType::F64 => CpuStorage::F64(out.flatten_all()?.to_vec1::<f64>()?),
            _ => CpuStorage::F32(out.flatten_all()?.to_vec1::<f32>()?),
        };
        Ok((storage, shape))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let x = Var::from_tensor(&self.x)?;
        let out = self.run(x.as_tensor())?;
        let mut grads = (out * grad.detach())?.sum_all()?.backward()?;
        let dx = grads.remove(x.as_tensor());
        // What remains are the gradients of the variables inside the block.
        let params: Vec<(TensorId, Tensor)> = grads
            .get_ids()
            .copied()
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|id| grads.get_id(id).map(|g| (id, g.detach())))
            .collect();
        self.sink.0.lock().expect("grad sink lock").extend(params);
        Ok(dx.map(|g| g.detach()))
    }
}
