//! nn building blocks: seeded, order-independent initialisation; Parquet round trip;
//! the MLP's analytic input gradient and the parameter gradient of a force-matching
//! loss built on it, both against finite differences.

use candle_core::{DType, Device, Module, Tensor};
use cgloop::artifact::tensors::{from_table, to_table};
use cgloop::nn::gradcheck::check_parameter_gradients;
use cgloop::nn::{Activation, Mlp, ParameterStore};

fn seed(n: u8) -> [u8; 32] {
    [n; 32]
}

fn build(store: &ParameterStore, name: &str, activation: Activation) -> Mlp {
    let vb = store.var_builder(DType::F64, &Device::Cpu);
    Mlp::new(&[3, 8, 8, 1], activation, vb.pp(name)).unwrap()
}

fn input(batch: usize) -> Tensor {
    let values: Vec<f64> = (0..batch * 3).map(|i| ((i as f64) * 0.731).sin()).collect();
    Tensor::from_vec(values, (batch, 3), &Device::Cpu).unwrap()
}

#[test]
fn initialisation_is_seeded_and_independent_of_creation_order() {
    let a = ParameterStore::new(seed(1));
    build(&a, "encoder", Activation::Tanh);
    build(&a, "decoder", Activation::Tanh);
    let b = ParameterStore::new(seed(1));
    build(&b, "decoder", Activation::Tanh);
    build(&b, "encoder", Activation::Tanh);
    let (ta, tb) = (a.to_tensors().unwrap(), b.to_tensors().unwrap());
    assert_eq!(ta, tb);
    assert_eq!(ta.len(), 12);
    assert!(
        ta.windows(2).all(|w| w[0].name < w[1].name),
        "sorted by name"
    );
    let c = ParameterStore::new(seed(2));
    build(&c, "encoder", Activation::Tanh);
    build(&c, "decoder", Activation::Tanh);
    assert_ne!(ta, c.to_tensors().unwrap());
    // Kaiming-normal weights: std = gain / sqrt(fan_in) with fan_in = 8 for layer1.
    let w = ta
        .iter()
        .find(|t| t.name == "encoder.layer1.weight")
        .unwrap();
    let var = w.values.iter().map(|v| v * v).sum::<f64>() / w.values.len() as f64;
    assert!(var > 0.02 && var < 0.6, "weight variance {var}");
}

#[test]
fn parameters_round_trip_through_the_model_parameters_table() {
    let a = ParameterStore::new(seed(3));
    let model = build(&a, "u", Activation::Silu);
    let table = to_table(&a.to_tensors().unwrap());
    let bytes = cgloop::artifact::encode_table(&table, &Default::default()).unwrap();
    let (back, _) = cgloop::artifact::decode_table(bytes.into()).unwrap();
    let b = ParameterStore::new(seed(4));
    let other = build(&b, "u", Activation::Silu);
    let x = input(5);
    assert_ne!(
        model.forward(&x).unwrap().to_vec2::<f64>().unwrap(),
        other.forward(&x).unwrap().to_vec2::<f64>().unwrap()
    );
    b.load(&from_table(&back).unwrap()).unwrap();
    assert_eq!(
        model.forward(&x).unwrap().to_vec2::<f64>().unwrap(),
        other.forward(&x).unwrap().to_vec2::<f64>().unwrap()
    );
}

#[test]
fn the_input_gradient_matches_finite_differences() {
    for activation in [Activation::Tanh, Activation::Silu, Activation::Softplus] {
        let store = ParameterStore::new(seed(5));
        let model = build(&store, "u", activation);
        let x = input(4);
        let (y, g) = model.forward_with_input_gradient(&x).unwrap();
        assert_eq!(
            y.to_vec2::<f64>().unwrap(),
            model.forward(&x).unwrap().to_vec2::<f64>().unwrap()
        );
        let g = g.to_vec2::<f64>().unwrap();
        let base = x.to_vec2::<f64>().unwrap();
        let h = 1e-6;
        for (b, row) in base.iter().enumerate() {
            for k in 0..3 {
                let shifted = |delta: f64| {
                    let mut r = row.clone();
                    r[k] += delta;
                    let t = Tensor::from_vec(r, (1, 3), &Device::Cpu).unwrap();
                    model.forward(&t).unwrap().to_vec2::<f64>().unwrap()[0][0]
                };
                let fd = (shifted(h) - shifted(-h)) / (2.0 * h);
                assert!(
                    (fd - g[b][k]).abs() < 1e-8,
                    "{activation:?} sample {b} input {k}: {fd} vs {}",
                    g[b][k]
                );
            }
        }
    }
}

/// L(theta) = mean over samples of |dU/dx - F|^2: the force-matching loss shape.
fn loss(model: &Mlp, x: &Tensor, target: &Tensor) -> Tensor {
    let (_, g) = model.forward_with_input_gradient(x).unwrap();
    (g - target).unwrap().sqr().unwrap().mean_all().unwrap()
}

#[test]
fn the_force_matching_gradient_matches_finite_differences_with_one_backward() {
    assert!(std::env::var_os("CANDLE_GRAD_DO_NOT_DETACH").is_none());
    let store = ParameterStore::new(seed(6));
    let model = build(&store, "u", Activation::Silu);
    let x = input(6);
    let target = Tensor::from_vec(
        (0..18)
            .map(|i| ((i as f64) * 0.37).cos())
            .collect::<Vec<_>>(),
        (6, 3),
        &Device::Cpu,
    )
    .unwrap();
    let mismatches =
        check_parameter_gradients(&store, || Ok(loss(&model, &x, &target)), 1e-6, 1e-7).unwrap();
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn the_gradient_check_catches_a_wrong_gradient() {
    let store = ParameterStore::new(seed(7));
    let model = build(&store, "u", Activation::Tanh);
    let x = input(3);
    // The backward pass cannot see the parameters through `detach`, the finite
    // differences can: every checked entry must be reported.
    let mismatches = check_parameter_gradients(
        &store,
        || model.forward(&x)?.detach().sqr()?.sum_all(),
        1e-6,
        1e-7,
    )
    .unwrap();
    assert!(
        mismatches.iter().any(|m| m.parameter == "u.layer0.weight"),
        "{mismatches:#?}"
    );
}
