//! Products on OpenBLAS equal candle's, forward and backward, for every operand layout the
//! decoder produces (own process: the library choice is per process).

use candle_core::{Device, Tensor, Var};
use talr_model::ops::{blas, matmul, max_abs_diff};

fn loaded() -> bool {
    match talr_assets::cached_for_test(&talr_assets::OPENBLAS) {
        Some(path) => {
            blas::use_library(&path).unwrap();
            assert!(blas::active().unwrap().contains("OpenBLAS"));
            true
        }
        None => false,
    }
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let mut state = seed;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    Tensor::from_vec(values, dims, &Device::Cpu).unwrap()
}

#[test]
fn blas_products_and_their_gradients_match_candles() {
    if !loaded() {
        return;
    }
    type View = fn(&Tensor) -> Tensor;
    let plain: View = |t| t.clone();
    let transposed: View = |t| t.t().unwrap().contiguous().unwrap().t().unwrap();
    // (a dims, b dims, how a and b are laid out)
    let cases: Vec<(Vec<usize>, Vec<usize>, View, View)> = vec![
        (vec![37, 19], vec![19, 23], plain, plain),
        (vec![37, 19], vec![19, 23], transposed, transposed),
        (vec![5, 64], vec![64, 300], plain, transposed),
        (vec![2, 3, 11, 8], vec![2, 3, 8, 13], plain, transposed),
        (vec![2, 3, 11, 8], vec![2, 3, 8, 13], transposed, plain),
    ];
    for (i, (da, db, va, vb)) in cases.into_iter().enumerate() {
        let a = Var::from_tensor(&va(&randn(&da, 2 * i as u64))).unwrap();
        let b = Var::from_tensor(&vb(&randn(&db, 2 * i as u64 + 1))).unwrap();
        let (a_view, b_view) = (va(a.as_tensor()), vb(b.as_tensor()));
        let ours = matmul(&a_view, &b_view).unwrap();
        let reference = a_view.matmul(&b_view).unwrap();
        assert_eq!(ours.dims(), reference.dims(), "case {i}");
        assert!(max_abs_diff(&ours, &reference).unwrap() < 1e-5, "case {i}");
        let w = randn(ours.dims(), 99);
        let g_ours = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g_ref = (reference * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&a, &b] {
            let (x, y) = (
                g_ours.get(v.as_tensor()).unwrap(),
                g_ref.get(v.as_tensor()).unwrap(),
            );
            assert!(
                max_abs_diff(x, y).unwrap() < 1e-5,
                "case {i}: gradients differ"
            );
        }
    }
    // A view whose batch dims do not flatten to one stride is copied first, not misread.
    let a = randn(&[4, 6, 5, 3], 7)
        .narrow(1, 1, 3)
        .unwrap()
        .transpose(0, 1)
        .unwrap();
    let b = randn(&[3, 4, 3, 2], 8);
    let reference = a.contiguous().unwrap().matmul(&b).unwrap();
    let diff = max_abs_diff(&matmul(&a, &b).unwrap(), &reference).unwrap();
    assert!(diff < 1e-5);
}

#[test]
fn a_library_that_is_not_blas_is_refused_by_name() {
    let err = blas::use_library(std::path::Path::new("/nonexistent/libopenblas.so"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/libopenblas.so"), "{err}");
}
