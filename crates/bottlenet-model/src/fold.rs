//! BatchNorm folding for inference: every `conv → BN` pair becomes one conv with a bias.
//!
//! Inference BN is the per-channel affine map `y = γ·(x − μ)/√(σ² + ε) + β` with the running
//! statistics, so after a convolution it can be merged into the weights: with
//! `a = γ/√(σ² + ε)`, `W' = a·W` (per output channel) and `b' = β − a·μ`. burn computes the BN as
//! four passes over the activation (subtract, divide, multiply, add); the folded conv adds its bias
//! in place, so the phone's and the server's halves skip those passes (issue 13's profile).
//!
//! Invariant that marks a folded pair: every convolution followed by a BN in this crate is built
//! bias-free (torchvision's layout, `resnet::conv`, and the bottleneck unit's convs), so a conv
//! with a bias is one whose BN has been folded into it, and [`conv_bn`] then skips the BN. Fold
//! only inference copies: a folded module must not be trained (its BN no longer learns) or saved
//! as a bundle (its records no longer match a fresh module's).

use crate::bottleneck::{ReductionUnit, RestorationUnit};
use crate::bottlenet::{BottleNet, CloudHalf, MobileHalf};
use crate::bundle::HalfBundle;
use crate::observe::{Op, OpObserver};
use crate::resnet::{Block, ResNet, ResNetHead, ResNetTail};
use burn::module::Param;
use burn::nn::BatchNorm;
use burn::nn::conv::{Conv2d, ConvTranspose2d};
use burn::tensor::Tensor;

/// A module whose `conv → BN` pairs can be folded for inference.
pub trait FoldBatchNorm: Sized {
    /// The same function of the input, with each BN merged into the conv before it.
    fn fold_batch_norms(self) -> Self;
}

/// `(a, b)` with `BN(x) = a·x + b` per channel (running statistics).
fn affine(bn: &BatchNorm) -> (Tensor<1>, Tensor<1>) {
    let scale = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let shift = bn.beta.val() - bn.running_mean.value() * scale.clone();
    (scale, shift)
}

/// `conv` with `bn` merged in. A conv that already has a bias is left as it is (it is folded,
/// by the invariant in the module docs).
pub(crate) fn fold_conv(conv: Conv2d, bn: &BatchNorm) -> Conv2d {
    if conv.bias.is_some() {
        return conv;
    }
    let (scale, shift) = affine(bn);
    let c_out = conv.weight.dims()[0];
    let weight = conv.weight.val() * scale.reshape([c_out, 1, 1, 1]);
    Conv2d { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(shift)), ..conv }
}

/// `conv` (weight `[c_in, c_out, k, k]`, one group) with `bn` merged in.
pub(crate) fn fold_conv_transpose(conv: ConvTranspose2d, bn: &BatchNorm) -> ConvTranspose2d {
    if conv.bias.is_some() {
        return conv;
    }
    let (scale, shift) = affine(bn);
    let c_out = conv.weight.dims()[1];
    let weight = conv.weight.val() * scale.reshape([1, c_out, 1, 1]);
    ConvTranspose2d { weight: Param::from_tensor(weight), bias: Some(Param::from_tensor(shift)), ..conv }
}

/// `bn(conv(x))`, or `conv(x)` alone once `bn` is folded into `conv`.
pub(crate) fn conv_bn(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<4> {
    let y = obs.op(Op::conv(conv), || crate::onednn_conv::conv2d_forward(conv, x));
    norm_after(conv.bias.is_some(), bn, y, false, obs)
}

/// `relu(bn(conv(x)))`, or `relu(conv(x))` once folded. Unfolded, the BatchNorm and the ReLU
/// are one operation (`batch_norm`), observed as [`Op::BatchNorm`].
pub(crate) fn conv_bn_relu(conv: &Conv2d, bn: &BatchNorm, x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<4> {
    let y = obs.op(Op::conv(conv), || crate::onednn_conv::conv2d_forward(conv, x));
    norm_after(conv.bias.is_some(), bn, y, true, obs)
}

/// `relu(bn(conv(x)))` for the transposed conv, as [`conv_bn_relu`].
pub(crate) fn conv_transpose_bn_relu(conv: &ConvTranspose2d, bn: &BatchNorm, x: Tensor<4>, obs: &mut impl OpObserver) -> Tensor<4> {
    let y = obs.op(Op::ConvTranspose, || conv.forward(x));
    norm_after(conv.bias.is_some(), bn, y, true, obs)
}

/// What follows a convolution `y`: its BatchNorm unless `folded` into it, then ReLU if asked.
fn norm_after(folded: bool, bn: &BatchNorm, y: Tensor<4>, then_relu: bool, obs: &mut impl OpObserver) -> Tensor<4> {
    match (folded, then_relu) {
        (true, false) => y,
        (true, true) => obs.op(Op::Relu, || burn::tensor::activation::relu(y)),
        (false, _) => obs.op(Op::BatchNorm, || crate::batch_norm::forward(bn, y, then_relu)),
    }
}

fn fold_pair((conv, bn): (Conv2d, BatchNorm)) -> (Conv2d, BatchNorm) {
    (fold_conv(conv, &bn), bn)
}

fn fold_blocks(blocks: Vec<Block>) -> Vec<Block> {
    blocks.into_iter().map(FoldBatchNorm::fold_batch_norms).collect()
}

fn fold_optional_blocks(blocks: Vec<Option<Block>>) -> Vec<Option<Block>> {
    blocks.into_iter().map(|b| b.map(FoldBatchNorm::fold_batch_norms)).collect()
}

impl FoldBatchNorm for Block {
    fn fold_batch_norms(self) -> Self {
        match self {
            Block::Basic(mut b) => {
                b.conv1 = fold_conv(b.conv1, &b.bn1);
                b.conv2 = fold_conv(b.conv2, &b.bn2);
                b.downsample = b.downsample.map(fold_pair);
                Block::Basic(b)
            }
            Block::Bottleneck(mut b) => {
                b.conv1 = fold_conv(b.conv1, &b.bn1);
                b.conv2 = fold_conv(b.conv2, &b.bn2);
                b.conv3 = fold_conv(b.conv3, &b.bn3);
                b.downsample = b.downsample.map(fold_pair);
                Block::Bottleneck(b)
            }
        }
    }
}

impl FoldBatchNorm for ResNet {
    fn fold_batch_norms(mut self) -> Self {
        self.conv1 = fold_conv(self.conv1, &self.bn1);
        [self.layer1, self.layer2, self.layer3, self.layer4] = [self.layer1, self.layer2, self.layer3, self.layer4].map(fold_blocks);
        self
    }
}

impl FoldBatchNorm for ResNetHead {
    fn fold_batch_norms(mut self) -> Self {
        self.conv1 = fold_conv(self.conv1, &self.bn1);
        [self.layer1, self.layer2, self.layer3, self.layer4] = [self.layer1, self.layer2, self.layer3, self.layer4].map(fold_blocks);
        self
    }
}

impl FoldBatchNorm for ResNetTail {
    fn fold_batch_norms(mut self) -> Self {
        [self.layer1, self.layer2, self.layer3, self.layer4] = [self.layer1, self.layer2, self.layer3, self.layer4].map(fold_optional_blocks);
        self
    }
}

impl FoldBatchNorm for ReductionUnit {
    fn fold_batch_norms(mut self) -> Self {
        self.channel_conv = fold_conv(self.channel_conv, &self.channel_bn);
        if let (Some(conv), Some(bn)) = (self.spatial_conv.take(), &self.spatial_bn) {
            self.spatial_conv = Some(fold_conv(conv, bn));
        }
        self
    }
}

impl FoldBatchNorm for RestorationUnit {
    fn fold_batch_norms(mut self) -> Self {
        if let (Some(conv), Some(bn)) = (self.spatial_conv.take(), &self.spatial_bn) {
            self.spatial_conv = Some(fold_conv_transpose(conv, bn));
        }
        self.channel_conv = fold_conv(self.channel_conv, &self.channel_bn);
        self
    }
}

impl FoldBatchNorm for MobileHalf {
    fn fold_batch_norms(mut self) -> Self {
        self.backbone = self.backbone.fold_batch_norms();
        self.reduction = self.reduction.fold_batch_norms();
        self
    }
}

impl FoldBatchNorm for CloudHalf {
    fn fold_batch_norms(mut self) -> Self {
        self.restoration = self.restoration.fold_batch_norms();
        self.backbone = self.backbone.fold_batch_norms();
        self
    }
}

impl FoldBatchNorm for BottleNet {
    fn fold_batch_norms(mut self) -> Self {
        self.backbone = self.backbone.fold_batch_norms();
        if let Some(mut unit) = self.bottleneck.take() {
            unit.reduction = unit.reduction.fold_batch_norms();
            unit.restoration = unit.restoration.fold_batch_norms();
            self.bottleneck = Some(unit);
        }
        self
    }
}

impl<H: FoldBatchNorm> FoldBatchNorm for HalfBundle<H> {
    fn fold_batch_norms(self) -> Self {
        self.map_halves(FoldBatchNorm::fold_batch_norms)
    }
}
