//! One sample's feature tensor (C×H×W, row-major) and its shape.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Channels × height × width of one sample's features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Shape {
    pub const fn new(channels: usize, height: usize, width: usize) -> Self {
        Self { channels, height, width }
    }

    /// Number of values, `C·H·W` (saturating, so absurd shapes stay comparable).
    pub fn len(&self) -> usize {
        self.channels.saturating_mul(self.height).saturating_mul(self.width)
    }

    /// True when any side is zero.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values in one channel, `H·W`.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

impl FromStr for Shape {
    type Err = Error;

    /// Parses `CxHxW`, e.g. `1x28x28`.
    fn from_str(s: &str) -> Result<Self> {
        let sides: Vec<usize> = s
            .split(['x', 'X', '×'])
            .map(|p| p.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::BadShape(format!("{s:?} (expected CxHxW, e.g. 1x28x28)")))?;
        match sides.as_slice() {
            [c, h, w] => Ok(Shape::new(*c, *h, *w)),
            _ => Err(Error::BadShape(format!("{s:?} (expected CxHxW, e.g. 1x28x28)"))),
        }
    }
}

/// One sample's features, `C×H×W` row-major.
///
/// Invariant: `data.len() == shape.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTensor {
    pub shape: Shape,
    pub data: Vec<f32>,
}

impl FeatureTensor {
    /// Wraps `data`, checking its length against `shape`.
    pub fn new(shape: Shape, data: Vec<f32>) -> Result<Self> {
        if data.len() != shape.len() {
            return Err(Error::ShapeMismatch { shape: shape.to_string(), len: data.len(), expected: shape.len() });
        }
        Ok(Self { shape, data })
    }

    /// Root mean square of the values (0 for an empty tensor).
    pub fn rms(&self) -> f64 {
        if self.data.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.data.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        (sum / self.data.len() as f64).sqrt()
    }

    /// RMSE between `self` and `other`, divided by `self`'s RMS (0 when both are zero).
    pub fn relative_rmse(&self, other: &FeatureTensor) -> f64 {
        let n = self.data.len().max(1) as f64;
        let sq: f64 = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2))
            .sum();
        let rmse = (sq / n).sqrt();
        let rms = self.rms();
        if rms == 0.0 { rmse } else { rmse / rms }
    }
}
