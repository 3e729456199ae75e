//! The ResNet backbones as burn modules, with parameter names equal to torchvision's state-dict
//! keys (`conv1`, `bn1`, `layer1.0.conv1`, `layer1.0.downsample.0`/`.1`, `fc`), so a torchvision
//! checkpoint loads by plain mapping.
//!
//! Split point `j` is the output of residual block `j` (1-based, counted over all stages);
//! `head(x, j)` runs the stem and blocks `1..=j`, `tail(z, j)` runs blocks `j+1..=N`, the global
//! average pool and `fc`. `j = 0` is the input itself (cloud-only: empty head, whole tail).
//! [`ResNetHead`] and [`ResNetTail`] hold only one side's weights, for the phone and the server
//! (paper §3.4).

use crate::arch::{BackboneConfig, BackboneSpec, BlockKind, BlockSpec, StemSpec};
use crate::error::{Error, Result};
use crate::fold::{conv_bn, conv_bn_relu};
use crate::observe::{Op, OpObserver, Unobserved};
use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

/// torchvision initialises convolutions with `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
fn conv_init() -> Initializer {
    Initializer::KaimingNormal { gain: std::f64::consts::SQRT_2, fan_out_only: true }
}

/// A bias-free k×k convolution with symmetric padding, as every conv in a torchvision ResNet.
pub(crate) fn conv(c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(padding, padding, padding, padding))
        .with_bias(false)
        .with_initializer(conv_init())
        .init(device)
}

pub(crate) fn bn(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

/// torchvision's `BasicBlock`: 3×3 conv (stride s) → BN → ReLU → 3×3 conv → BN, plus the
/// identity or `downsample` shortcut, then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    /// `downsample.0` (1×1 conv, stride s) and `downsample.1` (BN).
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

/// torchvision's `Bottleneck` (v1.5): 1×1 → BN → ReLU → 3×3 (stride s) → BN → ReLU → 1×1 (×4
/// channels) → BN, plus the shortcut, then ReLU.
#[derive(Module, Debug)]
pub struct BottleneckBlock {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Conv2d,
    pub bn3: BatchNorm,
    pub downsample: Option<(Conv2d, BatchNorm)>,
}

/// One residual block (a split point ends after one of these).
// burn's Module derive does not see through `Box`, so the variants stay unboxed; a model holds at
// most a few dozen blocks.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Block {
    Basic(BasicBlock),
    Bottleneck(BottleneckBlock),
}

fn downsample(spec: &BlockSpec, device: &Device) -> Option<(Conv2d, BatchNorm)> {
    spec.downsample
        .then(|| (conv(spec.in_channels, spec.out_channels, 1, spec.stride, 0, device), bn(spec.out_channels, device)))
}

fn shortcut(downsample: &Option<(Conv2d, BatchNorm)>, x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<4> {
    match downsample {
        Some((conv, bn)) => conv_bn(conv, bn, x, obs),
        None => x,
    }
}

fn relu_op(x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<4> {
    obs.op(Op::Relu, || relu(x))
}

impl Block {
    /// A freshly initialised block. BN weights start at 1 and biases at 0, as in torchvision.
    pub fn new(spec: &BlockSpec, device: &Device) -> Self {
        let (c_in, p, c_out, s) = (spec.in_channels, spec.planes, spec.out_channels, spec.stride);
        match spec.kind {
            BlockKind::Basic => Block::Basic(BasicBlock {
                conv1: conv(c_in, p, 3, s, 1, device),
                bn1: bn(p, device),
                conv2: conv(p, p, 3, 1, 1, device),
                bn2: bn(p, device),
                downsample: downsample(spec, device),
            }),
            BlockKind::Bottleneck => Block::Bottleneck(BottleneckBlock {
                conv1: conv(c_in, p, 1, 1, 0, device),
                bn1: bn(p, device),
                conv2: conv(p, p, 3, s, 1, device),
                bn2: bn(p, device),
                conv3: conv(p, c_out, 1, 1, 0, device),
                bn3: bn(c_out, device),
                downsample: downsample(spec, device),
            }),
        }
    }

    /// Input channels the block expects.
    pub fn in_channels(&self) -> usize {
        let conv1 = match self {
            Block::Basic(b) => &b.conv1,
            Block::Bottleneck(b) => &b.conv1,
        };
        conv1.weight.dims()[1]
    }

    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`
    /// - output: `[batch, out_channels, ceil(H/stride), ceil(W/stride)]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_observed(x, &mut Unobserved)
    }

    /// [`Block::forward`], each operation run through `obs`.
    pub fn forward_observed(&self, x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<4> {
        let (identity, y) = match self {
            Block::Basic(b) => {
                let identity = shortcut(&b.downsample, x.clone(), obs);
                let y = conv_bn_relu(&b.conv1, &b.bn1, x, obs);
                (identity, conv_bn(&b.conv2, &b.bn2, y, obs))
            }
            Block::Bottleneck(b) => {
                let identity = shortcut(&b.downsample, x.clone(), obs);
                let y = conv_bn_relu(&b.conv1, &b.bn1, x, obs);
                let y = conv_bn_relu(&b.conv2, &b.bn2, y, obs);
                (identity, conv_bn(&b.conv3, &b.bn3, y, obs))
            }
        };
        let sum = obs.op(Op::ResidualAdd, || y + identity);
        relu_op(sum, obs)
    }
}

fn stem_modules(stem: &StemSpec, device: &Device) -> (Conv2d, BatchNorm, Option<MaxPool2d>) {
    let pool = stem.max_pool.then(|| {
        MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init()
    });
    (
        conv(stem.in_channels, stem.out_channels, stem.kernel, stem.stride, stem.padding, device),
        bn(stem.out_channels, device),
        pool,
    )
}

fn stem_forward(conv1: &Conv2d, bn1: &BatchNorm, maxpool: &Option<MaxPool2d>, x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<4> {
    let y = conv_bn_relu(conv1, bn1, x, obs);
    match maxpool {
        Some(pool) => obs.op(Op::MaxPool, || crate::pool::max_pool2d(pool, y)),
        None => y,
    }
}

/// Global average pool, flatten, `fc`.
fn classify(fc: &Linear, x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<2> {
    let pooled = obs.op(Op::GlobalPool, || x.mean_dim(3).mean_dim(2));
    obs.op(Op::Linear, || fc.forward(pooled.flatten::<2>(1, 3)))
}

/// Checks `x` has `channels` channels before a conv sees it (burn panics on a mismatch).
fn check_channels(x: &Tensor<4>, channels: usize, at: &str) -> Result<()> {
    let dims = x.dims();
    if dims[1] != channels || dims[2] == 0 || dims[3] == 0 {
        return Err(Error::shape(at, format!("[batch, {channels}, H>0, W>0]"), dims));
    }
    Ok(())
}

/// A whole ResNet (torchvision layout).
#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    /// torchvision's 3×3 stride-2 max-pool; absent in the compact model.
    pub maxpool: Option<MaxPool2d>,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    /// Empty in the three-stage compact model.
    pub layer4: Vec<Block>,
    pub fc: Linear,
    #[module(skip)]
    spec: BackboneSpec,
}

/// Splits a flat list of blocks back into torchvision's four stages.
fn into_stages<T>(specs: &[BlockSpec], items: impl IntoIterator<Item = T>) -> [Vec<T>; 4] {
    let mut stages: [Vec<T>; 4] = Default::default();
    for (spec, item) in specs.iter().zip(items) {
        stages[spec.stage - 1].push(item);
    }
    stages
}

impl ResNet {
    /// A freshly initialised backbone.
    pub fn new(config: &BackboneConfig, device: &Device) -> Result<Self> {
        let spec = config.spec()?;
        let (conv1, bn1, maxpool) = stem_modules(&spec.stem, device);
        let blocks = spec.blocks.iter().map(|b| Block::new(b, device));
        let [layer1, layer2, layer3, layer4] = into_stages(&spec.blocks, blocks);
        let fc = LinearConfig::new(spec.feature_channels, config.num_classes).init(device);
        Ok(Self { conv1, bn1, maxpool, layer1, layer2, layer3, layer4, fc, spec })
    }

    /// The blocks and stem this backbone was built from.
    pub fn spec(&self) -> &BackboneSpec {
        &self.spec
    }

    /// The backbone configuration.
    pub fn config(&self) -> &BackboneConfig {
        &self.spec.config
    }

    /// Number of residual blocks (split points).
    pub fn num_blocks(&self) -> usize {
        self.spec.blocks.len()
    }

    /// Every block in order: block `k` (1-based) is item `k − 1`.
    pub fn blocks(&self) -> impl Iterator<Item = &Block> {
        self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4)
    }

    /// The split points for a `C×H×W` input: name `RBk`, torchvision module path, output shape.
    pub fn split_points(&self, input: [usize; 3]) -> Vec<crate::info::SplitPoint> {
        crate::info::split_points(&self.spec, input)
    }

    /// Stem and blocks `1..=j`; `j = 0` returns the input unchanged.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`
    /// - output: the shape of split point `j` (see [`ResNet::split_points`])
    pub fn head(&self, x: Tensor<4>, j: usize) -> Result<Tensor<4>> {
        self.spec.check_split(j, 0)?;
        check_channels(&x, self.spec.stem.in_channels, "backbone input")?;
        if j == 0 {
            return Ok(x);
        }
        let y = stem_forward(&self.conv1, &self.bn1, &self.maxpool, x, &mut Unobserved);
        Ok(self.blocks().take(j).fold(y, |y, block| block.forward(y)))
    }

    /// Blocks `j+1..=N`, global average pool and `fc`; `j = 0` runs the whole network.
    ///
    /// # Shapes
    /// - `z`: the shape of split point `j`
    /// - output: `[batch, num_classes]`
    pub fn tail(&self, z: Tensor<4>, j: usize) -> Result<Tensor<2>> {
        self.spec.check_split(j, 0)?;
        if j == 0 {
            return self.forward(z);
        }
        check_channels(&z, self.spec.blocks[j - 1].out_channels, &format!("tail input after RB{j}"))?;
        let y = self.blocks().skip(j).fold(z, |y, block| block.forward(y));
        Ok(classify(&self.fc, y, &mut Unobserved))
    }

    /// The whole network.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, H, W]`
    /// - output: `[batch, num_classes]`
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let n = self.num_blocks();
        let features = self.head(x, n)?;
        Ok(classify(&self.fc, features, &mut Unobserved))
    }

    /// A copy of the phone side: stem and blocks `1..=j` (`1 <= j <= N`).
    pub fn head_part(&self, j: usize) -> Result<ResNetHead> {
        self.spec.check_split(j, 1)?;
        let [layer1, layer2, layer3, layer4] = into_stages(&self.spec.blocks[..j], self.blocks().take(j).cloned());
        Ok(ResNetHead {
            conv1: self.conv1.clone(),
            bn1: self.bn1.clone(),
            maxpool: self.maxpool.clone(),
            layer1,
            layer2,
            layer3,
            layer4,
            spec: self.spec.clone(),
            split: j,
        })
    }

    /// A copy of the server side: blocks `j+1..=N` and `fc` (`1 <= j <= N`).
    pub fn tail_part(&self, j: usize) -> Result<ResNetTail> {
        self.spec.check_split(j, 1)?;
        let items = self.blocks().enumerate().map(|(k, b)| (k >= j).then(|| b.clone()));
        let [layer1, layer2, layer3, layer4] = into_stages(&self.spec.blocks, items);
        Ok(ResNetTail { layer1, layer2, layer3, layer4, fc: self.fc.clone(), spec: self.spec.clone(), split: j })
    }
}

/// The phone's share of a backbone: stem and blocks `1..=j`, under torchvision's names.
#[derive(Module, Debug)]
pub struct ResNetHead {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub maxpool: Option<MaxPool2d>,
    pub layer1: Vec<Block>,
    pub layer2: Vec<Block>,
    pub layer3: Vec<Block>,
    pub layer4: Vec<Block>,
    #[module(skip)]
    spec: BackboneSpec,
    split: usize,
}

impl ResNetHead {
    /// A freshly initialised head up to split `j` (`1 <= j <= N`), to load weights into.
    pub fn new(config: &BackboneConfig, j: usize, device: &Device) -> Result<Self> {
        let spec = config.spec()?;
        spec.check_split(j, 1)?;
        let (conv1, bn1, maxpool) = stem_modules(&spec.stem, device);
        let blocks = spec.blocks[..j].iter().map(|b| Block::new(b, device));
        let [layer1, layer2, layer3, layer4] = into_stages(&spec.blocks[..j], blocks);
        Ok(Self { conv1, bn1, maxpool, layer1, layer2, layer3, layer4, spec, split: j })
    }

    /// The split point this head ends at.
    pub fn split(&self) -> usize {
        self.split
    }

    /// Stem and blocks `1..=j`; the same values as [`ResNet::head`].
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        self.forward_observed(x, &mut Unobserved)
    }

    /// [`ResNetHead::forward`], each operation run through `obs`.
    pub fn forward_observed(&self, x: Tensor<4>, obs: &mut impl OpObserver) -> Result<Tensor<4>> {
        check_channels(&x, self.spec.stem.in_channels, "backbone input")?;
        let y = stem_forward(&self.conv1, &self.bn1, &self.maxpool, x, obs);
        let blocks = self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4);
        Ok(blocks.fold(y, |y, block| block.forward_observed(y, obs)))
    }
}

/// The server's share of a backbone: blocks `j+1..=N` and `fc`. Blocks on the phone's side are
/// `None`, so every parameter keeps its torchvision name (`layer3.2.conv1.weight`).
#[derive(Module, Debug)]
pub struct ResNetTail {
    pub layer1: Vec<Option<Block>>,
    pub layer2: Vec<Option<Block>>,
    pub layer3: Vec<Option<Block>>,
    pub layer4: Vec<Option<Block>>,
    pub fc: Linear,
    #[module(skip)]
    spec: BackboneSpec,
    split: usize,
}

impl ResNetTail {
    /// A freshly initialised tail after split `j` (`1 <= j <= N`), to load weights into.
    pub fn new(config: &BackboneConfig, j: usize, device: &Device) -> Result<Self> {
        let spec = config.spec()?;
        spec.check_split(j, 1)?;
        let items = spec.blocks.iter().enumerate().map(|(k, b)| (k >= j).then(|| Block::new(b, device)));
        let [layer1, layer2, layer3, layer4] = into_stages(&spec.blocks, items);
        let fc = LinearConfig::new(spec.feature_channels, config.num_classes).init(device);
        Ok(Self { layer1, layer2, layer3, layer4, fc, spec, split: j })
    }

    /// The split point this tail starts after.
    pub fn split(&self) -> usize {
        self.split
    }

    /// Blocks `j+1..=N`, pool and `fc`; the same values as [`ResNet::tail`].
    pub fn forward(&self, z: Tensor<4>) -> Result<Tensor<2>> {
        self.forward_observed(z, &mut Unobserved)
    }

    /// [`ResNetTail::forward`], each operation run through `obs`.
    pub fn forward_observed(&self, z: Tensor<4>, obs: &mut impl OpObserver) -> Result<Tensor<2>> {
        let j = self.split;
        check_channels(&z, self.spec.blocks[j - 1].out_channels, &format!("tail input after RB{j}"))?;
        let blocks = self.layer1.iter().chain(&self.layer2).chain(&self.layer3).chain(&self.layer4).flatten();
        let y = blocks.fold(z, |y, block| block.forward_observed(y, obs));
        Ok(classify(&self.fc, y, obs))
    }
}

