//! What every training loop shares: a seeded train/validation split, seeded minibatches,
//! frames gathered into a tensor, Adam over a parameter store, and the epoch loop that
//! keeps the best validation checkpoint ([`train_keeping_best`]).
//!
//! The split and the batch order come from the caller's ChaCha generator (a node's
//! stream), so training is a pure function of (data, params, seed). The split is by
//! contiguous blocks of frames rather than frame by frame: neighbouring MD frames are
//! correlated, and a validation frame whose neighbour was trained on would flatter the
//! validation error.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand_core::RngCore;

use super::store::ParameterStore;
use crate::artifact::tensors::NamedTensor;

/// A uniform index in 0..n from the generator (n > 0), by rejection (no modulo bias).
pub fn uniform_index(rng: &mut impl RngCore, n: usize) -> usize {
    let n = n as u64;
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let v = rng.next_u64();
        if v < zone {
            return (v % n) as usize;
        }
    }
}

/// Fisher-Yates shuffle driven by the generator.
pub fn shuffle<T>(items: &mut [T], rng: &mut impl RngCore) {
    for i in (1..items.len()).rev() {
        let j = uniform_index(rng, i + 1);
        items.swap(i, j);
    }
}

/// Frames 0..n split into `blocks` contiguous blocks, a fraction `validation` of the
/// blocks (at least one when `validation > 0` and there are two blocks) drawn for
/// validation. Returns (train, validation), each sorted.
pub fn block_split(
    n: usize,
    blocks: usize,
    validation: f64,
    rng: &mut impl RngCore,
) -> (Vec<usize>, Vec<usize>) {
    let blocks = blocks.clamp(1, n.max(1));
    let mut order: Vec<usize> = (0..blocks).collect();
    shuffle(&mut order, rng);
    let mut n_validation = (validation * blocks as f64).round() as usize;
    if validation > 0.0 && blocks >= 2 {
        n_validation = n_validation.max(1);
    }
    n_validation = n_validation.min(blocks.saturating_sub(1));
    let chosen = &order[..n_validation];
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for frame in 0..n {
        let block = frame * blocks / n;
        if chosen.contains(&block) {
            val.push(frame);
        } else {
            train.push(frame);
        }
    }
    (train, val)
}

/// [`block_split`] of consecutive sources on their own: frames [0, n_0) are the first
/// source, [n_0, n_0 + n_1) the second, and so on; each is cut into `blocks` blocks with
/// a fraction `validation` of them held out, drawn one source after the other from
/// `rng`. So every source is represented in both sets, and a single source is split as
/// by [`block_split`] (same draws). Returns (train, validation), each sorted.
pub fn block_split_sources(
    lengths: &[usize],
    blocks: usize,
    validation: f64,
    rng: &mut impl RngCore,
) -> (Vec<usize>, Vec<usize>) {
    let (mut train, mut val) = (Vec::new(), Vec::new());
    let mut start = 0;
    for &n in lengths.iter().filter(|&&n| n > 0) {
        let (t, v) = block_split(n, blocks, validation, rng);
        train.extend(t.into_iter().map(|i| start + i));
        val.extend(v.into_iter().map(|i| start + i));
        start += n;
    }
    (train, val)
}

/// One epoch's minibatches: the indices shuffled, cut into batches of `size` (the last
/// may be smaller).
pub fn minibatches(indices: &[usize], size: usize, rng: &mut impl RngCore) -> Vec<Vec<usize>> {
    let mut order = indices.to_vec();
    shuffle(&mut order, rng);
    order.chunks(size.max(1)).map(|c| c.to_vec()).collect()
}

/// Rows `frames` of a flat per-frame array (`width` values a frame) as a tensor of
/// shape (frames, width / 3, 3).
pub fn gather_frames(
    values: &[f64],
    width: usize,
    frames: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let mut out = Vec::with_capacity(frames.len() * width);
    for &f in frames {
        out.extend_from_slice(&values[f * width..(f + 1) * width]);
    }
    Tensor::from_vec(out, (frames.len(), width / 3, 3), device)?.to_dtype(dtype)
}

/// Adam (no weight decay) over every parameter in the store.
pub fn adam(store: &ParameterStore, learning_rate: f64) -> Result<AdamW> {
    let vars = store.vars().into_iter().map(|(_, v)| v).collect();
    AdamW::new(
        vars,
        ParamsAdamW {
            lr: learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )
}

/// Adam (no weight decay) over every parameter of several stores (one model made of
/// parts), in store order then name order.
pub fn adam_over(stores: &[&ParameterStore], learning_rate: f64) -> Result<AdamW> {
    let vars = stores
        .iter()
        .flat_map(|s| s.vars().into_iter().map(|(_, v)| v))
        .collect();
    AdamW::new(
        vars,
        ParamsAdamW {
            lr: learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )
}

/// One optimizer step on `loss`; returns the loss value.
pub fn step(optimizer: &mut AdamW, loss: &Tensor) -> Result<f64> {
    optimizer.backward_step(loss)?;
    loss.to_dtype(DType::F64)?.to_scalar::<f64>()
}

/// The epoch a training run keeps, and its validation loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BestEpoch {
    pub epoch: usize,
    pub validation: f64,
}

/// What one epoch reports: its validation loss (lower is better; NaN or infinite never
/// counts as best) and a line for the log.
pub struct EpochReport {
    pub validation: f64,
    pub summary: String,
}

/// The epoch loop of every trainer: `epoch(e)` trains epoch e = 1..=epochs and reports
/// its validation loss; the store's weights are copied whenever that loss is finite and
/// below every earlier one (`start`, the checkpoint before training, if any, included),
/// and each epoch is logged as "epoch e/epochs: summary", "(best)" added when kept. At
/// the end the kept weights are loaded back into the store.
///
/// Returns the kept epoch, or `None` when no epoch had a finite validation loss (the
/// store then holds the last epoch's weights and the caller says the training
/// diverged). Store errors go through `store_error`.
pub fn train_keeping_best<E>(
    epochs: usize,
    store: &ParameterStore,
    start: Option<(BestEpoch, Vec<NamedTensor>)>,
    store_error: fn(candle_core::Error) -> E,
    mut epoch: impl FnMut(usize) -> std::result::Result<EpochReport, E>,
) -> std::result::Result<Option<BestEpoch>, E> {
    let mut best = start;
    for e in 1..=epochs {
        let report = epoch(e)?;
        let improved = report.validation.is_finite()
            && best
                .as_ref()
                .is_none_or(|(b, _)| report.validation < b.validation);
        if improved {
            let weights = store.to_tensors().map_err(store_error)?;
            best = Some((
                BestEpoch {
                    epoch: e,
                    validation: report.validation,
                },
                weights,
            ));
        }
        tracing::info!(
            "epoch {e}/{epochs}: {}{}",
            report.summary,
            if improved { " (best)" } else { "" }
        );
    }
    match best {
        Some((kept, weights)) => {
            store.load(&weights).map_err(store_error)?;
            Ok(Some(kept))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::stream;

    #[test]
    fn sources_are_split_on_their_own() {
        // 400 main frames then 80 added ones, 10 blocks, 20 % held out of each.
        let (train, val) = block_split_sources(&[400, 80], 10, 0.2, &mut stream(5, 0));
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..480).collect::<Vec<_>>());
        assert_eq!(val.iter().filter(|&&i| i < 400).count(), 80);
        assert_eq!(val.iter().filter(|&&i| i >= 400).count(), 16);
        // The first source is split as block_split splits it alone.
        let (t0, v0) = block_split(400, 10, 0.2, &mut stream(5, 0));
        assert_eq!(
            train
                .iter()
                .filter(|&&i| i < 400)
                .copied()
                .collect::<Vec<_>>(),
            t0
        );
        assert_eq!(
            val.iter()
                .filter(|&&i| i < 400)
                .copied()
                .collect::<Vec<_>>(),
            v0
        );
        assert_eq!(
            block_split_sources(&[400], 10, 0.2, &mut stream(5, 0)),
            (t0, v0)
        );
    }

    #[test]
    fn block_split_covers_every_frame_once() {
        let mut rng = stream(3, 0);
        let (train, val) = block_split(103, 10, 0.2, &mut rng);
        assert_eq!(train.len() + val.len(), 103);
        assert!(!val.is_empty() && !train.is_empty());
        let mut all: Vec<usize> = train.iter().chain(&val).copied().collect();
        all.sort();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        // Same generator state, same split.
        assert_eq!(block_split(103, 10, 0.2, &mut stream(3, 0)), (train, val));
    }

    #[test]
    fn minibatches_partition_the_indices() {
        let idx: Vec<usize> = (0..10).collect();
        let batches = minibatches(&idx, 4, &mut stream(1, 1));
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let mut all: Vec<usize> = batches.concat();
        all.sort();
        assert_eq!(all, idx);
    }

    /// The kept epoch is the lowest finite validation loss (the first of equals), its
    /// weights end up in the store, and a run with no finite loss keeps nothing.
    #[test]
    fn the_loop_keeps_the_best_finite_epoch_and_restores_its_weights() {
        let store = ParameterStore::new([7; 32]);
        let w = store
            .var_builder(DType::F64, &Device::Cpu)
            .get_with_hints(1, "w", candle_nn::Init::Const(0.0))
            .unwrap();
        let value =
            |store: &ParameterStore| store.vars()[0].1.as_tensor().to_vec1::<f64>().unwrap()[0];
        let losses = [3.0, f64::NAN, 1.0, 1.0, 2.0];
        let kept = train_keeping_best(
            losses.len(),
            &store,
            None,
            |e| e,
            |e| {
                store.vars()[0]
                    .1
                    .set(&Tensor::new(&[e as f64], &Device::Cpu)?)?;
                Ok::<_, candle_core::Error>(EpochReport {
                    validation: losses[e - 1],
                    summary: String::new(),
                })
            },
        )
        .unwrap();
        assert_eq!(
            kept,
            Some(BestEpoch {
                epoch: 3,
                validation: 1.0
            })
        );
        assert_eq!(value(&store), 3.0);
        drop(w);
        let none = train_keeping_best(
            2,
            &store,
            None,
            |e| e,
            |_| {
                Ok::<_, candle_core::Error>(EpochReport {
                    validation: f64::INFINITY,
                    summary: String::new(),
                })
            },
        )
        .unwrap();
        assert_eq!(none, None);
    }
}
