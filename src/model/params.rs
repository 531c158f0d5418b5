//! Parameters on the host: named tensors in model order, and seeded initialization.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{shape_err, Result};
use crate::model::spec::{ParamKind, Plan};

/// A named f32 tensor on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every parameter and running statistic of a model, in model order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParamSet {
    pub tensors: Vec<HostTensor>,
}

/// One standard normal draw (Box-Muller on two uniforms in (0, 1]).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl ParamSet {
    /// Fresh parameters: He (Kaiming) normal weights, std sqrt(2 / fan_in), suited to the
    /// ReLU layers that follow them; zero biases; batch norm with gamma 1, beta 0, running
    /// mean 0 and variance 1. Drawn from `seed` alone, layer by layer in model order.
    pub fn init(plan: &Plan, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut tensors = vec![];
        for layer in &plan.layers {
            for (kind, shape) in layer.params() {
                let len: usize = shape.iter().product();
                let data = match kind {
                    ParamKind::Weight => {
                        let std = (2.0 / layer.fan_in() as f64).sqrt();
                        (0..len)
                            .map(|_| (standard_normal(&mut rng) * std) as f32)
                            .collect()
                    }
                    ParamKind::Gamma | ParamKind::RunningVar => vec![1.0; len],
                    ParamKind::Bias | ParamKind::Beta | ParamKind::RunningMean => vec![0.0; len],
                };
                let name = format!("{}.{}", layer.name, kind.suffix());
                tensors.push(HostTensor { name, shape, data });
            }
        }
        Self { tensors }
    }

    pub fn get(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut HostTensor> {
        self.tensors.iter_mut().find(|t| t.name == name)
    }

    /// Number of values over all tensors.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    /// Fails unless the set holds exactly the plan's tensors with the plan's shapes, naming
    /// the first difference; `origin` says where the set came from (a checkpoint path).
    pub fn check_matches(&self, plan: &Plan, origin: &str) -> Result<()> {
        let expected = plan.param_shapes();
        for (name, _, shape) in &expected {
            match self.get(name) {
                None => {
                    return Err(shape_err(
                        "model",
                        format!(
                            "{origin} has no tensor {name}, which \
                        model {} needs; it was made for another architecture",
                            plan.spec.name
                        ),
                    ))
                }
                Some(t) if &t.shape != shape => {
                    return Err(shape_err(
                        "model",
                        format!(
                            "{origin}: tensor {name} has shape \
                        {:?}, model {} expects {shape:?}; it was made for another architecture",
                            t.shape, plan.spec.name
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(extra) = self
            .tensors
            .iter()
            .find(|t| !expected.iter().any(|e| e.0 == t.name))
        {
            return Err(shape_err(
                "model",
                format!(
                    "{origin} has tensor {}, which model {} does \
                not have; it was made for another architecture",
                    extra.name, plan.spec.name
                ),
            ));
        }
        Ok(())
    }
}
